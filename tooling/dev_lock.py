"""Checks that the dev lock (``requirements-dev.txt``, made by ``make lock-dev``) and pyproject.toml
say the same thing, so the versions the suite runs on are the versions the project declares.

- Every dependency pyproject.toml declares (the runtime set and the ``dev`` extra) is in the lock,
  at a version its range admits.
- Every declared range's floor is the locked version: the suite runs on the lock, so the lock's
  version is the one version known to work. A floor below it would be a claim nobody tests (moto
  5.2.1 to 5.2.4, once the declared floor, fail to start the embedded AWS). A range without a
  floor is refused for the same reason.
- Every package both locks hold (the layer's ``layers/core/requirements.txt``, resolved for Lambda,
  and the dev lock, resolved under it) has one version: tests run on what Lambda runs.

``make venv`` runs ``python -m tooling.dev_lock`` after installing the lock, so a dependency added
to pyproject.toml without ``make lock-dev`` stops the install with that advice. A unit test runs
the same check.
"""

from __future__ import annotations

import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO_ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = REPO_ROOT / "pyproject.toml"
DEV_LOCK = REPO_ROOT / "requirements-dev.txt"
LAYER_LOCK = REPO_ROOT / "layers" / "core" / "requirements.txt"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")


@dataclass(frozen=True)
class Problem:
    requirement: str
    why: str

    def __str__(self) -> str:
        return f"{self.requirement}: {self.why}"


def declared(pyproject: Path = PYPROJECT) -> list[Requirement]:
    """The runtime dependencies and the ``dev`` extra of pyproject.toml."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    texts = [*project.get("dependencies", []), *project.get("optional-dependencies", {}).get("dev", [])]
    return [Requirement(text) for text in texts]


def pins(lock: Path) -> dict[str, Version]:
    """``name==version`` lines of a pip-compile style lock, by canonical name."""
    found: dict[str, Version] = {}
    for line in lock.read_text(encoding="utf-8").splitlines():
        match = _PIN.match(line)
        if match is not None:
            found[canonicalize_name(match[1])] = Version(match[2])
    return found


def _floor(requirement: Requirement) -> Version | None:
    floors = [Version(spec.version) for spec in requirement.specifier if spec.operator in (">=", "==", "~=")]
    return max(floors) if floors else None


def problems(
    pyproject: Path = PYPROJECT, dev_lock: Path = DEV_LOCK, layer_lock: Path = LAYER_LOCK
) -> list[Problem]:
    """What makes the lock and the declarations disagree; empty when they agree."""
    locked = pins(dev_lock)
    found: list[Problem] = []
    for requirement in declared(pyproject):
        name = canonicalize_name(requirement.name)
        version = locked.get(name)
        if version is None:
            found.append(Problem(str(requirement), "not in the dev lock: run make lock-dev"))
            continue
        if not requirement.specifier.contains(version, prereleases=True):
            found.append(Problem(str(requirement), f"the lock holds {version}, outside the range"))
            continue
        floor = _floor(requirement)
        if floor is None:
            found.append(Problem(str(requirement), f"no floor: declare >={version} (the locked version)"))
        elif floor != version:
            found.append(
                Problem(str(requirement), f"the floor {floor} is not the locked {version}, the one tested")
            )
    for package, version in sorted(pins(layer_lock).items()):
        if package in locked and locked[package] != version:
            found.append(Problem(package, f"the layer lock holds {version}, the dev lock {locked[package]}"))
    return found


def main() -> int:
    found = problems()
    for problem in found:
        print(f"requirements-dev.txt and pyproject.toml disagree: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
