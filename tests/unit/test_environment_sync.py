"""pyproject.toml is the truth; environment.yml, the lock file and the containers agree."""

import re
import tomllib

import yaml

from tests.conftest import REPO


def _pins(lines):
    out = {}
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, version = line.partition("==")
        out[name.lower().replace("_", "-")] = version
    return out


def _pyproject():
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    return data["project"]


def test_direct_dependencies_are_exact_pins():
    for dep in _pyproject()["dependencies"]:
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][\w.]*", dep), dep


def test_environment_yml_matches_pyproject():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert _pins(pip_section) == _pins(_pyproject()["dependencies"])
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert python == "python=3.11"


def test_lock_contains_pyproject_pins():
    lock = _pins((REPO / "requirements.lock").read_text().splitlines())
    wanted = _pins(_pyproject()["dependencies"] + _pyproject()["optional-dependencies"]["test"])
    for name, version in wanted.items():
        assert lock.get(name) == version, f"requirements.lock: {name} {lock.get(name)} != {version}"


def test_containers_install_the_locked_package():
    docker = (REPO / "containers" / "Dockerfile").read_text()
    apptainer = (REPO / "containers" / "apptainer.def").read_text()
    for text in (docker, apptainer):
        assert "python:3.11-slim-bookworm" in text
        assert "-c requirements.lock ." in text
        assert "requirements.lock" in text and "pyproject.toml" in text
