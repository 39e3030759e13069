"""The built layer carries native code for the functions' architecture (arm64)."""

from __future__ import annotations

import os

import pytest

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
