"""One registry of the layer's module-level caches (tenantry.caches), cleared by one autouse fixture."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import tenantry
from tenantry import caches

LAYER = Path(tenantry.__file__).parent


def _modules() -> list[str]:
    return [info.name for info in pkgutil.walk_packages([str(LAYER)], prefix="tenantry.")]


def _keeps_state(tree: ast.Module) -> bool:
    """A module-level cache: a ``@cache``/``@lru_cache`` function, a ``global`` rebinding, or a
    module-level dict/list/set bound to a private name and filled at run time."""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                target = decorator.func if isinstance(decorator, ast.Call) else decorator
                name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
                if name in ("cache", "lru_cache"):
                    return True
            if any(isinstance(inner, ast.Global) for inner in ast.walk(node)):
                return True
        if isinstance(node, ast.AnnAssign | ast.Assign):
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            names = [target.id for target in targets if isinstance(target, ast.Name)]
            empty = isinstance(node.value, ast.Dict | ast.List | ast.Set) and not getattr(
                node.value, "keys", getattr(node.value, "elts", None)
            )
            if empty and any(name.startswith("_") and not name.isupper() for name in names):
                return True
    return False


def test_every_module_that_keeps_state_registers_a_clearing_function() -> None:
    # Given every module of the layer, imported
    for name in _modules():
        importlib.import_module(name)
    registered_modules = {key.rpartition(".")[0] for key in caches.registered()}
    # When a module keeps state between invocations
    keeping = {
        name
        for name in _modules()
        if name != "tenantry.caches"
        and _keeps_state(ast.parse(Path(str(importlib.import_module(name).__file__)).read_text()))
    }
    # Then it registered how to forget it
    assert keeping, "the scan found no cache at all: it is broken"
    assert keeping <= registered_modules, sorted(keeping - registered_modules)


def test_clear_all_forgets_every_registered_cache() -> None:
    # Given a cache filled in two modules
    from tenantry import edge, events

    edge._plan_ids["basic"] = "plan-1"
    events._known_heads["acme"] = 7
    # When the registry is cleared
    caches.clear_all()
    # Then both are empty
    assert edge._plan_ids == {} and events._known_heads == {}


def test_clear_all_with_a_prefix_forgets_only_that_modules_caches() -> None:
    from tenantry import edge, events

    edge._plan_ids["basic"] = "plan-1"
    events._known_heads["acme"] = 7
    caches.clear_all("tenantry.events.")
    assert events._known_heads == {} and edge._plan_ids == {"basic": "plan-1"}


def test_a_module_loaded_again_replaces_its_entry() -> None:
    def forget() -> None:
        pass

    before = len(caches.registered())
    caches.register(forget)
    caches.register(forget)
    assert len(caches.registered()) == before + 1
