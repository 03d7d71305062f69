"""seedos-connector test and dev with a connector definition, run as a user would: the demo CRM's
definition (examples/definitions/demo-crm.yaml) against the demo CRM, both real processes."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest
import yaml

from seedos_sdk.cli.definitions import egress_allowing
from seedos_sdk.declarative import load_file
from seedos_sdk.egress import EGRESS_SETTING
from seedos_sdk.testing import free_port, serve

SDK = Path(__file__).resolve().parents[2]
DEMO = SDK / "examples" / "definitions" / "demo-crm.yaml"
KEY = "cli-definition-key"
SAMPLES = json.dumps({"contacts": [{"email": "cli@example.com"}],
                      "companies": [{"name": "CLI Ltd"}]})  # fmt: skip


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "seedos_sdk.cli.main", *args], cwd=SDK, capture_output=True,
        text=True, timeout=120, env={**os.environ, **(env or {})},
    )  # fmt: skip


@pytest.fixture(scope="module")
def crm_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = {"DEMO_CRM_DATA_DIR": str(tmp_path_factory.mktemp("crm")), "DEMO_CRM_API_KEYS": KEY}
    with serve("examples.demo_crm.app:create_app", factory=True, cwd=SDK, env=env) as served:
        httpx.post(f"{served.url}/admin/seed", json={"contacts": 30, "companies": 5},
                   headers={"X-API-Key": KEY}, timeout=30).raise_for_status()  # fmt: skip
        yield served.url


# --------------------------------------------------------------------------- test


def test_test_passes_against_the_base_url_and_fails_with_wrong_credentials(crm_url: str) -> None:
    # the CRM listens on loopback, outside the default egress rule: --base-url lets it through
    env = {EGRESS_SETTING: ""}
    args = ["test", "--definition", str(DEMO), "--base-url", crm_url, "--write-samples", SAMPLES]

    ok = cli(*args, "--credentials", json.dumps({"api_key": KEY}), env=env)

    assert ok.returncode == 0, ok.stdout + ok.stderr
    digest = load_file(DEMO).digest
    assert (
        f"definition: demo-crm-declarative 1.0.0 (demo-crm.yaml, sha-256 {digest[:12]}" in ok.stdout
    )
    assert f"base URL: {crm_url} (in place of the definition's '{{{{ config.base_url }}}}')" in (
        ok.stdout
    )
    assert (
        "egress: 127.0.0.1 (the --base-url host '127.0.0.1') let through; everything else as"
        f" {EGRESS_SETTING}=0.0.0.0/0,::/0 (the default: public addresses only)" in ok.stdout
    )
    assert "6 passed, 0 failed" in ok.stdout

    bad = cli(*args, "--credentials", json.dumps({"api_key": "wrong"}), env=env)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "FAIL  connection" in bad.stdout and "401" in bad.stdout


def test_without_base_url_the_definition_calls_under_the_egress_rule_alone(crm_url: str) -> None:
    config = json.dumps({"base_url": crm_url})
    creds = json.dumps({"api_key": KEY})
    args = ["test", "--definition", str(DEMO), "--config", config, "--credentials", creds,
            "--write-samples", SAMPLES]  # fmt: skip

    refused = cli(*args, env={EGRESS_SETTING: ""})

    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"egress: as {EGRESS_SETTING}=0.0.0.0/0,::/0 (the default" in refused.stdout
    assert "FAIL  connection" in refused.stdout and "egress_refused" in refused.stdout
    assert "host '127.0.0.1' is outside the egress networks" in refused.stdout
    assert "reached with --base-url" in refused.stdout

    # the environment's rule is the generic connector's, as it is on the platform
    listed = cli(*args, env={EGRESS_SETTING: "127.0.0.0/8"})
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "6 passed, 0 failed" in listed.stdout


def test_a_definition_with_problems_is_not_served_and_every_problem_is_listed(
    tmp_path: Path,
) -> None:
    raw = yaml.safe_load(DEMO.read_text())
    raw["streams"][0]["request"]["path"] = "/v1/{{ config.__class__ }}"
    raw["streams"][1]["records"] = "results[?"
    del raw["auth"]["name"]
    path = tmp_path / "connector.yaml"
    path.write_text(yaml.safe_dump(raw))

    r = cli("test", "--definition", str(path), "--base-url", "http://127.0.0.1:9")

    assert r.returncode == 1, r.stdout + r.stderr
    assert f"{path} has 3 problem(s):" in r.stderr
    assert "  - auth: 'name' is a required property" in r.stderr
    assert "  - streams[0].request.path: '__class__': names starting with '_'" in r.stderr
    assert "  - streams[1].records: not a valid JMESPath selector" in r.stderr
    assert "PASS" not in r.stdout and "FAIL" not in r.stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--definition", "nowhere.yaml"], "cannot read nowhere.yaml"),
        (["--definition", str(DEMO), "--base-url", "ftp://127.0.0.1"], "is not an http(s) URL"),
        (["--definition", str(DEMO), "--base-url", "http://no-such-host.invalid"],
         "host 'no-such-host.invalid' does not resolve"),
        (["--definition", str(DEMO), "--base-url", "http://u:p@127.0.0.1"], "user info"),
    ],
)  # fmt: skip
def test_test_explains_what_it_cannot_use(args: list[str], says: str) -> None:
    r = cli("test", *args)

    assert r.returncode == 1, r.stdout + r.stderr
    assert says in r.stderr
    assert "PASS" not in r.stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--url", "http://127.0.0.1:9", "--definition", str(DEMO)], "exactly one of"),
        (["--url", "http://127.0.0.1:9", "--base-url", "http://x"], "--base-url goes with"),
    ],
)
def test_test_takes_one_target(args: list[str], says: str) -> None:
    r = cli("test", *args)

    assert r.returncode == 2 and says in r.stderr, r.stdout + r.stderr


def test_the_egress_rule_gains_exactly_the_named_hosts_addresses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(EGRESS_SETTING, raising=False)
    assert egress_allowing([("--base-url", "http://127.0.0.1:8020/api")]).value == (
        "127.0.0.1/32,0.0.0.0/0,::/0"
    )
    assert egress_allowing([("--allow-host", "http://[::1]")]).value == "::1/128,0.0.0.0/0,::/0"
    # a public address is allowed already: nothing is added
    public = egress_allowing([("--base-url", "https://93.184.215.14")])
    assert public.value == "0.0.0.0/0,::/0"
    assert "93.184.215.14 (the --base-url host '93.184.215.14') already allowed" in public.said
    # the operator's own rule is kept as it is, the host added before it
    monkeypatch.setenv(EGRESS_SETTING, "10.0.0.0/8")
    assert egress_allowing([("--base-url", "http://127.0.0.2")]).value == "127.0.0.2/32,10.0.0.0/8"


# --------------------------------------------------------------------------- dev


class Output:
    """A process's output lines, read as they come."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.stream:
            self.lines.put(line.rstrip("\n"))

    def close(self) -> None:
        """After the process ended: the rest is read, and the pipe closed."""
        self.reader.join(10)
        self.stream.close()

    def wait_for(self, text: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.seen):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{text!r} not printed; got:\n" + "\n".join(self.seen)
            try:
                self.seen.append(self.lines.get(timeout=remaining))
            except queue.Empty:
                continue


def until(check: Callable[[], httpx.Response | None], timeout: float = 20) -> httpx.Response:
    """Poll ``check()`` (a response, or None while there is none) until it returns one."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if (answer := check()) is not None:
                return answer
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "no answer in time"
        time.sleep(0.05)


def _write(path: Path, raw: dict) -> None:
    """Save like an editor that writes a new file and renames it over the old one."""
    swap = path.parent / f".{path.name}.swp"
    swap.write_text(yaml.safe_dump(raw, sort_keys=False))
    swap.replace(path)


def test_dev_serves_the_definition_and_follows_every_save(crm_url: str, tmp_path: Path) -> None:
    path = tmp_path / "connector.yaml"
    good = yaml.safe_load(DEMO.read_text())
    broken = {**good, "version": "2", "base_url": "{{ config.__init__ }}"}
    path.write_text(yaml.safe_dump(broken, sort_keys=False))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "seedos_sdk.cli.main", "dev", "--definition", str(path),
         "--port", str(port), "--allow-host", "127.0.0.1"],
        cwd=SDK, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True, env={**os.environ, EGRESS_SETTING: ""},
    )  # fmt: skip
    assert proc.stdout is not None
    out = Output(proc.stdout)
    try:
        # started with problems: each is printed, and nothing is served until they are fixed
        out.wait_for("has 2 problem(s)")
        out.wait_for("  - base_url: '__init__': names starting with '_' are not allowed")
        out.wait_for("  - version: '2' does not match")
        out.wait_for("egress: 127.0.0.1 (the --allow-host host '127.0.0.1') let through")
        r = until(lambda: httpx.get(f"{base}/current/manifest"))
        assert r.status_code == 503 and r.json()["code"] == "definition_not_loaded", r.text
        assert len(r.json()["problems"]) == 2

        # fixed: served at the URL an install would use, and at /current
        _write(path, good)
        url = f"{base}/definitions/demo-crm-declarative/1.0.0/{load_file(path).digest}"
        out.wait_for(f"  {url}")
        assert httpx.get(f"{url}/manifest").json()["version"] == "1.0.0"
        read = httpx.post(f"{base}/current/streams/contacts/read", json={
            "config": {"base_url": crm_url}, "credentials": {"api_key": KEY}})  # fmt: skip
        assert read.status_code == 200, read.text  # the CRM on loopback, let through
        assert read.json()["records"]

        # a new version: at its own URL at once; the old text is no longer served
        _write(path, {**good, "version": "1.0.1"})
        newer = f"{base}/definitions/demo-crm-declarative/1.0.1/{load_file(path).digest}"
        out.wait_for(f"  {newer}")
        assert httpx.get(f"{newer}/manifest").json()["version"] == "1.0.1"
        assert httpx.get(f"{base}/current/manifest").json()["version"] == "1.0.1"
        gone = httpx.get(f"{url}/manifest")
        assert gone.status_code == 404 and gone.json()["code"] == "definition_not_found"

        # a save with problems: listed, and the last good version kept
        path.write_text(yaml.safe_dump({**good, "streams": "none"}, sort_keys=False))
        out.wait_for("  - streams: 'none' is not of type 'array'")
        out.wait_for("still serving demo-crm-declarative 1.0.1")
        assert httpx.get(f"{newer}/manifest").status_code == 200
        listed = httpx.get(f"{base}/definitions").json()
        assert [i["version"] for i in listed["items"]] == ["1.0.1"]
        assert listed["refused"] == {"connector.yaml": ["streams: 'none' is not of type 'array'"]}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)
        out.close()


# --------------------------------------------------------------------------- interrupted


class _Interrupted(Exception):
    pass


def test_a_start_interrupted_before_ready_leaves_nothing_running(tmp_path: Path) -> None:
    """Ctrl-C while the generic connector starts (``dev`` and ``test``): the server runs in
    a session of its own, so the terminal's SIGINT never reaches it; it must be stopped."""
    from seedos_sdk.testing.process import start_command

    pid_file = tmp_path / "pid"
    never_ready = [sys.executable, "-c", "import os, sys, time;"
                   " open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(60)",
                   str(pid_file)]  # fmt: skip

    def interrupt(_signum: int, _frame: object) -> None:
        raise _Interrupted

    previous = signal.signal(signal.SIGALRM, interrupt)
    pid = None
    try:
        signal.setitimer(signal.ITIMER_REAL, 1.0)
        with pytest.raises(_Interrupted):
            start_command(never_ready, port=free_port(), timeout=30)
        pid = int(pid_file.read_text())
        with pytest.raises(ProcessLookupError):  # stopped and reaped, not left sleeping
            os.kill(pid, 0)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
