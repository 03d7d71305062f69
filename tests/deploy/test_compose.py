"""Static checks of the deployment files: compose, Dockerfile, Prometheus and Grafana config.

No Docker engine is needed. The compose file is validated against the Compose Specification's
JSON Schema (vendored next to this file), and the files are checked against each other.
"""

import json
import re
import stat
import subprocess
import sys
from pathlib import Path

import dotenv
import jsonschema
import yaml

from common import service_keys
from common.crypto import KeyRing

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
COMPOSE_SCHEMA = Path(__file__).resolve().parent / "compose-spec.json"
DOCKERFILE = ROOT / "Dockerfile"
PROMETHEUS_CONFIG = ROOT / "prometheus" / "prometheus.yml"
GRAFANA_DATASOURCES = ROOT / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
GRAFANA_PROVIDERS = ROOT / "grafana" / "provisioning" / "dashboards" / "dashboards.yml"
GRAFANA_DASHBOARDS = ROOT / "grafana" / "dashboards"

APP_SERVICES = ("gateway", "connector-service", "marketplace-service")
MIGRATE_SERVICE = "migrate"
METRICS_DOC = ROOT / "docs" / "metrics.md"
RECORDING_RULES = ROOT / "prometheus" / "rules"
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")


def known_metrics() -> set[str]:
    """What the dashboards may query: the metrics docs/metrics.md lists (tests/monitoring proves
    that list is what the code registers), a histogram's three series, and the recorded series
    of prometheus/rules/."""
    known: set[str] = set()
    for name, kind in re.findall(r"^\| `(seedos_\w+)` \| (\w+)", METRICS_DOC.read_text(), re.M):
        known |= {name + suffix for suffix in HISTOGRAM_SERIES} if kind == "histogram" else {name}
    for path in RECORDING_RULES.glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            known |= {rule["record"] for rule in group["rules"] if "record" in rule}
    return known


# The key, the Grafana admin password and anything named like a secret must come from the
# environment, with no default: `${VAR:?message}`.
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|(^|_)KEY$")
REQUIRED_REFERENCE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*:\?[^}]+\}$")
URL_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/:@]+:(?P<password>[^@]+)@")


def load_compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def services() -> dict:
    return load_compose()["services"]


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def depends_on(service: dict) -> dict:
    deps = service.get("depends_on") or {}
    # The short list form has no condition; represent it so the condition check reports it.
    return {name: {} for name in deps} if isinstance(deps, list) else deps


def command_port(service: dict) -> int:
    command = service["command"]
    text = command if isinstance(command, str) else " ".join(command)
    match = re.search(r"--port[ =](\d+)", text)
    assert match, f"command {text!r} does not pass --port"
    return int(match.group(1))


def bind_mount_sources(service: dict) -> list[str]:
    sources = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            source = volume.split(":", 1)[0]
        elif volume.get("type") == "bind":
            source = volume["source"]
        else:
            continue
        if source.startswith((".", "/")):
            sources.append(source)
    return sources


def bind_mount_target(service: dict, source: str) -> str | None:
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            parts = volume.split(":")
            if parts[0] == source:
                return parts[1]
        elif volume.get("source") == source:
            return volume["target"]
    return None


def provisioned_datasource_uid() -> str:
    datasources = yaml.safe_load(GRAFANA_DATASOURCES.read_text())["datasources"]
    prometheus = [ds for ds in datasources if ds["type"] == "prometheus"]
    assert len(prometheus) == 1, f"expected one Prometheus datasource, found {prometheus}"
    return prometheus[0]["uid"]


def dashboard_files() -> list[Path]:
    files = sorted(GRAFANA_DASHBOARDS.glob("*.json"))
    assert files, f"no dashboards in {GRAFANA_DASHBOARDS}"
    return files


def all_panels(panels: list[dict]) -> list[dict]:
    found = []
    for panel in panels:
        found.append(panel)
        found.extend(all_panels(panel.get("panels", [])))  # collapsed rows nest their panels
    return found


def test_compose_file_matches_the_compose_specification():
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    # The schema declares draft-07 as "https://json-schema.org/draft-07/schema", an address
    # jsonschema does not map to a draft by itself, so the draft is named here.
    assert "draft-07" in schema["$schema"], f"unexpected $schema {schema['$schema']}"
    jsonschema.Draft7Validator.check_schema(schema)
    errors = sorted(
        jsonschema.Draft7Validator(schema).iter_errors(load_compose()),
        key=lambda error: list(error.absolute_path),
    )
    messages = [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]
    assert not errors, "docker-compose.yml violates the Compose Specification:\n" + "\n".join(
        messages
    )
    assert "version" not in load_compose(), "the obsolete top-level `version:` key is set"


def test_services_have_healthchecks_and_conditional_dependencies():
    all_services = services()
    for name in APP_SERVICES:
        assert name in all_services, f"service {name!r} is missing from docker-compose.yml"

    for name, service in all_services.items():
        if name == MIGRATE_SERVICE:
            assert service.get("restart") == "no", "migrate is one-shot: it needs restart: 'no'"
        else:
            assert "healthcheck" in service, f"service {name!r} has no healthcheck"
        for dependency, spec in depends_on(service).items():
            assert dependency in all_services, f"{name} depends on unknown service {dependency!r}"
            assert spec.get("condition"), f"{name} depends on {dependency!r} without a condition"

    for name in APP_SERVICES:
        deps = depends_on(all_services[name])
        assert deps.get(MIGRATE_SERVICE, {}).get("condition") == "service_completed_successfully", (
            f"{name} must wait for migrate with condition service_completed_successfully"
        )
        probe = " ".join(all_services[name]["healthcheck"]["test"])
        port = command_port(all_services[name])
        assert f":{port}/readyz" in probe, f"{name}'s healthcheck does not probe :{port}/readyz"


def test_published_ports_bind_to_localhost():
    for name, service in services().items():
        for port in service.get("ports") or []:
            host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
            assert host_ip == "127.0.0.1", f"{name} publishes {port!r} beyond 127.0.0.1"
    published = [name for name, service in services().items() if service.get("ports")]
    assert not set(published) & (set(APP_SERVICES) - {"gateway"}), (
        f"only the gateway may publish a port among the app services, got {published}"
    )


def test_bind_mounts_and_build_contexts_exist():
    for name, service in services().items():
        for source in bind_mount_sources(service):
            assert (ROOT / source).exists(), f"{name} mounts {source}, which is not in the repo"
        build = service.get("build")
        if build is None:
            continue
        if isinstance(build, str):
            build = {"context": build}
        context = build.get("context", ".")
        dockerfile = build.get("dockerfile", "Dockerfile")
        assert (ROOT / context / dockerfile).is_file(), (
            f"{name} builds {context} but {Path(context) / dockerfile} does not exist"
        )


def test_prometheus_scrapes_exactly_the_app_services():
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    assert config["global"]["scrape_interval"] == "15s", "scrape_interval should be 15s"
    targets = set()
    for job in config["scrape_configs"]:
        assert job.get("metrics_path", "/metrics") == "/metrics", f"{job['job_name']} path"
        for static in job.get("static_configs", []):
            targets.update(static["targets"])
    all_services = services()
    expected = {f"{name}:{command_port(all_services[name])}" for name in APP_SERVICES}
    assert expected == {"gateway:8000", "connector-service:8001", "marketplace-service:8002"}, (
        f"compose runs the app services on unexpected ports: {sorted(expected)}"
    )
    assert targets == expected, f"Prometheus scrapes {sorted(targets)}, expected {sorted(expected)}"


def test_dockerfile_final_stage_is_slim_and_not_root():
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()]
    instructions = [line for line in lines if line and not line.startswith("#")]
    stages = [i for i, line in enumerate(instructions) if line.upper().startswith("FROM ")]
    assert stages, "the Dockerfile has no FROM"
    final = instructions[stages[-1] :]
    base = final[0].split()[1]
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?(@sha256:[0-9a-f]+)?", base), (
        f"the final stage is FROM {base}, not a slim Python 3.11 image"
    )
    users = [line.split(None, 1)[1] for line in final if line.upper().startswith("USER ")]
    assert users, "the final stage never sets USER, so it runs as root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}, f"the final stage runs as {users[-1]!r}"


def chosen_datasource(dashboard: dict, provisioned: str) -> str:
    """The datasource uid a dashboard's panels must name: the provisioned one, or its
    ``${datasource}`` variable when the dashboard lets the viewer pick among Prometheus ones."""
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "datasource":
            assert variable.get("query") == "prometheus", f"{variable['name']} is not Prometheus"
            return "${" + variable["name"] + "}"
    return provisioned


def test_grafana_dashboards_use_the_datasource_and_known_metrics():
    provisioned = provisioned_datasource_uid()
    known = known_metrics()
    assert {"seedos_http_requests_total", "seedos_connector_call_duration_seconds_bucket"} <= known
    for path in dashboard_files():
        dashboard = json.loads(path.read_text())
        uid = chosen_datasource(dashboard, provisioned)
        panels = all_panels(dashboard["panels"])
        assert panels, f"{path.name} has no panels"
        exprs = []
        for panel in panels:
            if panel["type"] == "row":
                continue
            title = panel.get("title", panel.get("id"))
            assert panel.get("datasource", {}).get("uid") == uid, (
                f"{path.name}: panel {title!r} does not use datasource uid {uid!r}"
            )
            for target in panel.get("targets", []):
                target_uid = target.get("datasource", {}).get("uid", uid)
                assert target_uid == uid, f"{path.name}: a query of {title!r} uses {target_uid!r}"
                assert target.get("expr"), f"{path.name}: a query of {title!r} has no expr"
                exprs.append(target["expr"])
        assert exprs, f"{path.name} has no queries"
        for variable in dashboard.get("templating", {}).get("list", []):
            if "datasource" in variable:
                assert variable["datasource"].get("uid") == uid, (
                    f"{path.name}: variable {variable['name']!r} does not use datasource {uid!r}"
                )
            query = variable.get("query")
            exprs.append(query.get("query", "") if isinstance(query, dict) else str(query or ""))
        names = {m for e in exprs for m in re.findall(r"[A-Za-z_:][\w:]*", e) if "seedos_" in m}
        unknown = names - known
        assert not unknown, f"{path.name} queries metrics the services do not export: {unknown}"


def test_grafana_provisioning_matches_compose_mounts():
    grafana = services()["grafana"]
    providers = yaml.safe_load(GRAFANA_PROVIDERS.read_text())["providers"]
    paths = {provider["options"]["path"] for provider in providers}
    mounted_at = bind_mount_target(grafana, "./grafana/dashboards")
    assert paths == {mounted_at}, (
        f"providers load {paths}, compose mounts dashboards at {mounted_at}"
    )
    datasources = yaml.safe_load(GRAFANA_DATASOURCES.read_text())["datasources"]
    assert [ds["url"] for ds in datasources] == ["http://prometheus:9090"], (
        "the datasource must point at the compose prometheus service"
    )


def test_no_secret_literals_in_compose():
    problems = []
    for name, service in services().items():
        env = environment(service)
        for key, value in env.items():
            if SECRET_NAME.search(key) and not REQUIRED_REFERENCE.fullmatch(value):
                problems.append(f"{name}.{key} = {value!r}")
            url = URL_PASSWORD.match(value)
            if url and not REQUIRED_REFERENCE.fullmatch(url.group("password")):
                problems.append(f"{name}.{key} embeds the password {url.group('password')!r}")
    assert not problems, "secrets must be `${VAR:?message}` references: " + "; ".join(problems)

    all_services = services()
    required = {
        "gateway": ["SEEDOS_GATEWAY_INTERNAL_SIGNING_KEY", "SEEDOS_INTERNAL_PUBLIC_KEYS"],
        "connector-service": ["SEEDOS_INTERNAL_PUBLIC_KEYS", "SEEDOS_IDEMPOTENCY_KEY"],
        "marketplace-service": ["SEEDOS_MARKETPLACE_INTERNAL_SIGNING_KEY",
                                "SEEDOS_INTERNAL_PUBLIC_KEYS", "SEEDOS_IDEMPOTENCY_KEY"],
        "grafana": ["GF_SECURITY_ADMIN_PASSWORD"],
    }  # fmt: skip
    for name, keys in required.items():
        for key in keys:
            value = environment(all_services[name]).get(key, "")
            assert REQUIRED_REFERENCE.fullmatch(value), (
                f"{name}.{key} must be a required reference like ${{{key}:?set {key}}},"
                f" got {value!r}"
            )
    # a service's private signing key is given to that service alone
    for name, service in all_services.items():
        signing = {k for k in environment(service) if k.endswith("_INTERNAL_SIGNING_KEY")}
        assert signing <= set(required.get(name, ())), f"{name} gets {signing}"


def test_seedos_keys_generate_gives_every_secret_compose_requires(tmp_path):
    """`seedos keys generate --output .env` is all a fresh deployment needs: every required
    reference in the compose file is set in it, and each value works where it goes."""
    text = json.dumps(load_compose())  # the YAML's values, not its comments
    needed = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*):\?", text))
    assert "SEEDOS_INTERNAL_PUBLIC_KEYS" in needed and "POSTGRES_PASSWORD" in needed
    out = tmp_path / ".env"
    run = subprocess.run([sys.executable, "-m", "seedos_cli.main", "keys", "generate",
                          "--output", str(out)], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    values = dotenv.dotenv_values(out)
    assert needed <= values.keys(), f"not generated: {needed - values.keys()}"
    again = subprocess.run([sys.executable, "-m", "seedos_cli.main", "keys", "generate",
                            "--output", str(out)], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert again.returncode == 1 and "never written over" in again.stderr
    public = service_keys.PublicKeys.parse(values["SEEDOS_INTERNAL_PUBLIC_KEYS"])
    for service in service_keys.SIGNING_SERVICES:
        key = service_keys.load_signing_key(values[service_keys.signing_setting(service)],
                                            service=service)  # fmt: skip
        assert public.issuer_of(key.kid) == service
    KeyRing.from_json(values["SEEDOS_CREDENTIAL_KEYS"])
