from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class ConnectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    return_to: str | None = Field(
        None,
        max_length=2000,
        description="Where the browser goes once connected: a path, or a URL on the public URL",
    )


class ConnectOut(BaseModel):
    authorization_url: str = Field(
        description=(
            "A single-use start URL on the gateway (`/api/v1/integrations/oauth/start?token=...`),"
            " not the provider's: open it in the browser that will approve. It sets a cookie that"
            " binds the connect to that browser and redirects to the provider; the provider's"
            " redirect back is refused in any other browser"
        )
    )
    expires_at: datetime = Field(
        description="The link must be opened and the connect completed by then (10 min)"
    )


class ClientIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_id: str = Field(min_length=1, max_length=500)
    client_secret: str = Field(min_length=1, max_length=2000)


class ClientOut(BaseModel):
    override: bool = Field(description="This install has its own OAuth client (never shown)")
    platform_client: bool = Field(description="The platform has a client for this connector")
    connected: bool = Field(description="An account is connected (there is an access token)")
