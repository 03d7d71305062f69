"""The SMTP settings' password never shows in the mailer's repr (a log line, a traceback's
locals)."""

from __future__ import annotations

from pydantic import SecretStr

from connector_service.outbound.email import Mailer
from connector_service.settings import ConnectorServiceSettings


def test_the_password_is_not_in_the_mailers_repr():
    settings = ConnectorServiceSettings.model_construct(
        smtp_host="127.0.0.1", smtp_port=2525, smtp_from="SEED-OS <seedos@localhost>",
        smtp_starttls=False, smtp_user="ops", smtp_password=SecretStr("hunter2-smtp"),
        smtp_timeout_seconds=5.0,
    )  # fmt: skip
    mailer = Mailer.from_settings(settings)
    assert mailer is not None and mailer.password == "hunter2-smtp"
    assert "hunter2" not in repr(mailer) and "hunter2" not in str(mailer)
    assert "ops" in repr(mailer)  # the rest is still there to read
