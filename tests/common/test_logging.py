from __future__ import annotations

from common.logging import REDACTED, redact


def test_redaction_of_keys_and_values():
    event = {
        "event": "call",
        "authorization": "Bearer abc",
        "api_key": "sk_seedos_abcdefghijk",
        "nested": {"client_secret": "s3cr3t", "fine": "visible", "list": ["Bearer xyz.abc"]},
        "message": "used sk_seedos_0123456789abcdef and token eyJhbGciOi.eyJzdWIiOi.sig",
        "url": "postgresql://user:hunter2@db:5432/x",
        "dsn_at": "connecting to postgresql://u:p@ssw0rd@db/x failed",
        "kv": "host=db user=postgres password=s3cret dbname=x",
        "path": "/ws?ticket=abc123&room=1",
    }
    out = redact(None, "info", dict(event))
    assert out["authorization"] == REDACTED and out["api_key"] == REDACTED
    assert out["nested"]["client_secret"] == REDACTED and out["nested"]["fine"] == "visible"
    assert "xyz" not in out["nested"]["list"][0]
    assert "sk_seedos_0123" not in out["message"] and "eyJzdWIiOi" not in out["message"]
    assert "hunter2" not in out["url"] and out["url"].startswith("postgresql://user:")
    assert "abc123" not in out["path"] and "room=1" in out["path"]
    assert "ssw0rd" not in out["dsn_at"] and "p@" not in out["dsn_at"]
    assert "s3cret" not in out["kv"] and "dbname=x" in out["kv"]
    assert out["event"] == "call"
