"""The built layer: arm64 cp313 native code, exactly the hashed lock, a matching SDK, within limits."""

from __future__ import annotations

import email.parser
import importlib.metadata
import os
import re
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from local import template
from tests.conftest import REPO_ROOT

BUILT_LAYER = REPO_ROOT / ".aws-sam" / "build" / "CoreLayer" / "python"
MACHINE_BY_ARCHITECTURE = {"arm64": "aarch64", "x86_64": "x86_64"}


def test_built_layer_native_modules_match_the_function_architecture() -> None:
    # Given `sam build` ran (make test runs it before pytest; CI must never skip this)
    if not BUILT_LAYER.is_dir():
        if os.environ.get("CI"):
            pytest.fail("the built layer is missing: make test runs `sam build` before pytest")
        pytest.skip("run `make build` first")
    (architecture,) = template.template()["Globals"]["Function"]["Architectures"]
    machine = MACHINE_BY_ARCHITECTURE[architecture]
    native = sorted(BUILT_LAYER.rglob("*.so"))
    # Then pydantic_core is among the native modules, and every one is built for that machine
    assert any(path.name.startswith("_pydantic_core") for path in native)
    wrong = [path.name for path in native if f"-{machine}-linux" not in path.name and "abi3" not in path.name]
    assert wrong == []
    # And every version-specific extension is for CPython 3.13, the functions' runtime
    (runtime,) = {template.template()["Globals"]["Function"]["Runtime"]}
    tag = "cpython-" + runtime.removeprefix("python").replace(".", "")
    assert tag == "cpython-313"
    other_python = [path.name for path in native if "abi3" not in path.name and tag not in path.name]
    assert other_python == []
    # And ELF headers agree with the file names (e_machine 183 = aarch64, 62 = x86_64)
    expected_e_machine = {"aarch64": 183, "x86_64": 62}[machine]
    for path in native:
        header = path.read_bytes()[:20]
        assert header[:4] == b"\x7fELF", path.name
        assert int.from_bytes(header[18:20], "little") == expected_e_machine, path.name


def test_the_layer_ships_the_library_source() -> None:
    if not BUILT_LAYER.is_dir():
        pytest.skip("run `make build` first")
    assert (BUILT_LAYER / "tenantry" / "authorizer.py").is_file()


def test_the_layer_ships_the_streaming_runtimes_exec_wrapper_executable() -> None:
    # The streaming functions' AWS_LAMBDA_EXEC_WRAPPER is /opt/bin/tenantry-streaming-runtime:
    # Lambda extracts the layer to /opt, so it must be at bin/ of the layer, executable.
    if not BUILT_LAYER.is_dir():
        pytest.skip("run `make build` first")
    wrapper = BUILT_LAYER.parent / "bin" / "tenantry-streaming-runtime"
    assert wrapper.is_file()
    assert os.access(wrapper, os.X_OK)
    assert (BUILT_LAYER / "tenantry" / "streaming_runtime.py").is_file()


# ---------------------------------------------------------------------- the lock and the SDK
LAYER_SOURCE = REPO_ROOT / "layers" / "core"
ZIPPED_LIMIT = 50 * 1024 * 1024  # Lambda: a zipped deployment package uploaded directly
UNZIPPED_LIMIT = 250 * 1024 * 1024  # Lambda: a function and all its layers, unzipped


def _lock() -> dict[str, tuple[str, int]]:
    """requirements.txt as {normalized name: (version, number of hashes)}."""
    pins: dict[str, tuple[str, int]] = {}
    current = ""
    for line in (LAYER_SOURCE / "requirements.txt").read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        found = re.match(r"^([A-Za-z0-9][A-Za-z0-9._\-]*)(?:\[[^\]]*\])?==([^\s;\\]+)", stripped)
        if found and not line.startswith(" "):
            current = canonicalize_name(found.group(1))
            pins[current] = (found.group(2), 0)
        elif stripped.startswith("--hash=sha256:") and current:
            version, hashes = pins[current]
            pins[current] = (version, hashes + 1)
    return pins


def _built_distributions(folder: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for info in folder.glob("*.dist-info"):
        metadata = email.parser.Parser().parsestr((info / "METADATA").read_text(encoding="utf-8"))
        found[canonicalize_name(metadata["Name"])] = str(metadata["Version"])
    return found


def sdk_mismatches(layer: Path) -> list[str]:
    """Why the layer's boto3/botocore/s3transfer would not work together (empty when they do)."""
    built = _built_distributions(layer)
    sdk = {name for name in ("boto3", "botocore", "s3transfer") if name in built}
    if not sdk:
        return []
    if "boto3" not in built:
        return [f"the layer ships {sorted(sdk)} without boto3: it shadows the runtime's and pairs untested"]
    problems = [
        f"the layer ships boto3 without {name}" for name in ("botocore", "s3transfer") if name not in built
    ]
    (boto3_info,) = layer.glob("boto3-*.dist-info")
    metadata = email.parser.Parser().parsestr((boto3_info / "METADATA").read_text(encoding="utf-8"))
    for requirement in map(Requirement, metadata.get_all("Requires-Dist") or []):
        name = canonicalize_name(requirement.name)
        if requirement.marker is None and name in built and built[name] not in requirement.specifier:
            problems.append(f"boto3 {built['boto3']} needs {requirement}, the layer has {name} {built[name]}")
    return problems


def _tree_size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def _zipped_size(folder: Path, target: Path) -> int:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder.parent))
    return target.stat().st_size


def test_the_lock_pins_every_dependency_with_hashes_and_keeps_the_direct_pins() -> None:
    lock = _lock()
    # Every entry is pinned with at least one hash (pip's --require-hashes mode)
    assert lock and all(hashes > 0 for _, hashes in lock.values()), lock
    # And the direct dependencies are in the lock at the versions requirements.in pins
    for line in (LAYER_SOURCE / "requirements.in").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            requirement = Requirement(line)
            name = canonicalize_name(requirement.name)
            assert name in lock, f"{name} is not in the lock: run make lock"
            assert lock[name][0] in requirement.specifier, f"{name} {lock[name][0]}: run make lock"


def test_the_venv_runs_the_versions_the_layer_ships() -> None:
    # Tests exercise the same SDK and libraries that Lambda loads from the layer
    drift = {
        name: (version, importlib.metadata.version(name))
        for name, (version, _) in _lock().items()
        if importlib.metadata.version(name) != version
    }
    assert drift == {}, "the venv differs from layers/core/requirements.txt: run make venv (or make lock)"


def test_the_built_layer_is_exactly_the_lock() -> None:
    if not BUILT_LAYER.is_dir():
        if os.environ.get("CI"):
            pytest.fail("the built layer is missing: make test runs `sam build` before pytest")
        pytest.skip("run `make build` first")
    built = _built_distributions(BUILT_LAYER)
    assert built == {name: version for name, (version, _) in _lock().items()}


def test_the_built_layer_has_a_matching_sdk_and_fits_lambdas_size_limits(tmp_path: Path) -> None:
    if not BUILT_LAYER.is_dir():
        if os.environ.get("CI"):
            pytest.fail("the built layer is missing: make test runs `sam build` before pytest")
        pytest.skip("run `make build` first")
    # boto3, botocore and s3transfer ship together, at versions boto3 accepts
    assert sdk_mismatches(BUILT_LAYER) == []
    # And the layer stays under 50 MB zipped
    zipped = _zipped_size(BUILT_LAYER, tmp_path / "layer.zip")
    assert zipped < ZIPPED_LIMIT, f"the layer zips to {zipped / 2**20:.1f} MB"
    # And each function plus the layer stays under 250 MB unzipped
    layer_size = _tree_size(BUILT_LAYER)
    for function in template.resources_of_type("AWS::Serverless::Function"):
        total = layer_size + _tree_size(BUILT_LAYER.parent.parent / function)
        assert total < UNZIPPED_LIMIT, f"{function} with the layer is {total / 2**20:.1f} MB unzipped"


def _fake_distribution(folder: Path, name: str, version: str, requires: list[str] = []) -> None:  # noqa: B006
    info = folder / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    lines = [f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}"]
    lines += [f"Requires-Dist: {requirement}" for requirement in requires]
    (info / "METADATA").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_sdk_check_refuses_a_botocore_without_boto3(tmp_path: Path) -> None:
    # Given a layer like the one aws-xray-sdk produced: botocore, no boto3
    _fake_distribution(tmp_path, "botocore", "1.44.8")
    # Then the check names the problem
    assert sdk_mismatches(tmp_path) == [
        "the layer ships ['botocore'] without boto3: it shadows the runtime's and pairs untested"
    ]


def test_sdk_check_refuses_a_botocore_that_boto3_does_not_accept(tmp_path: Path) -> None:
    _fake_distribution(
        tmp_path, "boto3", "1.43.108", ["botocore<1.44.0,>=1.43.108", "s3transfer<0.20.0,>=0.19.0"]
    )
    _fake_distribution(tmp_path, "botocore", "1.44.8")
    _fake_distribution(tmp_path, "s3transfer", "0.19.3")
    assert sdk_mismatches(tmp_path) == [
        "boto3 1.43.108 needs botocore<1.44.0,>=1.43.108, the layer has botocore 1.44.8"
    ]


def test_sdk_check_accepts_a_matching_set_and_no_sdk_at_all(tmp_path: Path) -> None:
    assert sdk_mismatches(tmp_path) == []
    _fake_distribution(
        tmp_path, "boto3", "1.43.108", ["botocore<1.44.0,>=1.43.108", "s3transfer<0.20.0,>=0.19.0"]
    )
    _fake_distribution(tmp_path, "botocore", "1.43.127")
    _fake_distribution(tmp_path, "s3transfer", "0.19.3")
    assert sdk_mismatches(tmp_path) == []
