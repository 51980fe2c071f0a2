"""requirements.lock (what `./run` installs, with hashes) must satisfy pyproject.toml: a
dependency added to pyproject without `./run lock` would be missing from a fresh install."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent


def locked_versions() -> dict[str, str]:
    pins = re.findall(
        r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)",
        (ROOT / "requirements.lock").read_text(),
        re.M,
    )
    return {canonicalize_name(name): version for name, version in pins}


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    return [Requirement(spec) for spec in specs]


def test_every_dependency_is_locked_at_a_version_its_range_allows() -> None:
    locked = locked_versions()
    env = {"sys_platform": "linux", "platform_system": "Linux", "python_version": "3.11"}
    problems = []
    for req in declared():
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        version = locked.get(canonicalize_name(req.name))
        if version is None:
            problems.append(f"{req.name} is not in requirements.lock")
        elif not req.specifier.contains(version, prereleases=True):
            problems.append(f"{req.name}=={version} does not satisfy {req}")
    assert not problems, "run `./run lock` after changing pyproject.toml: " + "; ".join(problems)


def test_every_locked_package_carries_hashes() -> None:
    text = (ROOT / "requirements.lock").read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[-1])
    unhashed = [e.split()[0] for e in entries if "==" in e and "--hash=sha256:" not in e]
    assert not unhashed
