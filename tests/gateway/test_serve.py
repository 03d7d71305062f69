"""`python -m gateway.serve` refusing its settings: a clear message naming the environment
variable, never its value, and no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

CASES = {
    "unparsable JSON": ("SEEDOS_GATEWAY_RATE_LIMITS", "notjson-SECRETISH", "not valid JSON"),
    "a value out of range": (
        "SEEDOS_GATEWAY_RATE_LIMITS", json.dumps({"credential": {"quota": 0}}),
        "SEEDOS_GATEWAY_RATE_LIMITS.credential.quota",
    ),
    "a tenant id where a slug goes": (
        "SEEDOS_GATEWAY_JWT_ISSUERS",
        json.dumps({"s": {"kind": "supabase", "issuer": "https://x.supabase.co/auth/v1",
                          "mode": "authoritative",
                          "tenants": ["30af60d9-1111-4111-8111-111111111111"]}}),
        "is not a tenant slug",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_refused_settings_say_which_variable(case, tmp_path):
    name, value, says = CASES[case]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEEDOS_")}
    env |= {"SEEDOS_ENV": "development", "SEEDOS_DATA_DIR": str(tmp_path), name: value}
    run = subprocess.run([sys.executable, "-m", "gateway.serve", "--port", "0"], env=env,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode != 0
    assert says in run.stderr and name in run.stderr, run.stderr
    assert "Traceback" not in run.stderr and "SECRETISH" not in run.stderr
