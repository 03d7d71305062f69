"""The SDK's example connector serving another version, as its author would after a release:
``CONNECTOR_VERSION=1.1.0 uvicorn versioned_connector:app`` (with sdk/ on the path)."""

import os

from examples.crm_connector.connector import connector

connector.version = os.environ["CONNECTOR_VERSION"]
app = connector.app()
