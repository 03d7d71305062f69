"""Declarative connectors: a connector described by a definition file (``connector.yaml``,
format in ``definition.schema.json`` and docs/connector-definitions.md), run by the generic
connector (:mod:`seedos_sdk.declarative.server`) on the same contract as a hand-written one."""

from seedos_sdk.declarative.definition import Definition, DefinitionError, load, load_file, schema
from seedos_sdk.declarative.engine import build

__all__ = ["Definition", "DefinitionError", "build", "load", "load_file", "schema"]
