"""DynamoDB requests into moto without its web framework: the embedded AWS's innermost WSGI app.

Moto's server routes every request through werkzeug's dispatcher, a Flask app per service and a
generic, shape-walking response serializer. For the item operations the local gateway's handlers
make on every request (GetItem, Query, PutItem, TransactWriteItems…), those layers cost more
than moto's own work. Two shortcuts, both behind moto's regular request handler:

- **Routing.** A request whose ``X-Amz-Target`` is DynamoDB's goes straight to moto's
  ``DynamoHandler`` (the class the Flask route would have called), with the same normalized
  request object; anything else goes on to moto's dispatcher unchanged.
- **Method lookup.** Moto lists a handler class's methods (``inspect.getmembers``) on every
  request to check the action exists; the list of a class never changes, so it is computed once.
- **Serialization.** A successful item operation's result is already DynamoDB's JSON (moto
  converted its typed values), so it is written with ``json.dumps``. A result that is not plain
  JSON (bytes, dates) and every other operation and every error still take moto's serializer.
- **Expression text.** Moto lexes a condition expression and parses an update expression from
  their text on every request, the same way each time. Both results are cached by the text alone:
  the condition lexer's tokens are immutable tuples (names and values are resolved after lexing,
  per request), and the update expression's syntax tree is only read, or deep-copied by moto's
  validator before names, values and the item are resolved into it. Errors are never cached.
- **Validation traversal.** Moto validates an update by walking its syntax tree once per rule;
  at each node it rebuilt the rule's tuple of node classes and asked ``isinstance`` of abstract
  classes. Which node classes a rule processes is fixed per rule class, and whether a node class
  is one of them is fixed per node class, so both answers are remembered; the walk, its order and
  what each rule does to a node are moto's.
- **Structural checks.** Two of moto's update validators, the one that allows each clause
  (``SET``, ``ADD``…) once and the one that refuses two actions on one path, look only at the
  expression's shape and its attribute names, yet ran once per nested node of the tree, each time
  collecting clauses from the whole subtree beneath: quadratic in the number of actions (a metering
  update adds a dozen counters). They are the first two validators, so they see the tree as parsed;
  an outcome that passed is remembered by the expression text (and the names it maps), and a
  refused one is checked again, so moto raises its own error.
- **Tree copies.** Moto's validator deep-copies an update's syntax tree before resolving into it,
  through ``copy.deepcopy``'s generic path (``__reduce_ex__`` per node). Syntax-tree nodes are
  plain objects (no ``__slots__``, no copy hooks), so they are copied the way that path copies
  them, attribute by attribute with one memo; anything else inside still goes to ``deepcopy``.

This sits inside the lock and journal wrapper, so everything that wraps the embedded AWS sees
these requests exactly as before.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Iterable
from http import HTTPStatus
from typing import Any

DYNAMODB_TARGET_PREFIX = "DynamoDB_20120810."
JSON_CONTENT_TYPE = "application/x-amz-json-1.0"
# Operations whose output shape is items, keys and counts only: json.dumps writes it as moto's
# serializer would.
PLAIN_JSON_OPERATIONS = frozenset(
    {
        "GetItem",
        "BatchGetItem",
        "Query",
        "Scan",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "BatchWriteItem",
        "TransactGetItems",
        "TransactWriteItems",
    }
)


class DynamoDBFastLane:
    """WSGI: DynamoDB JSON requests to moto's handler directly; the rest to ``app``."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        from moto.dynamodb.responses import DynamoHandler  # noqa: PLC0415 - moto is heavy to import
        from moto.moto_server.werkzeug_app import BackendRequest  # noqa: PLC0415

        _install_plain_json_results()
        _install_method_name_cache()
        _install_expression_caches()
        _install_faster_traversal()
        _install_structural_check_cache()
        _install_faster_tree_copy()
        self._app = app
        self._handler = DynamoHandler
        self._request_class = BackendRequest

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
        if not target.startswith(DYNAMODB_TARGET_PREFIX) or environ.get("REQUEST_METHOD") != "POST":
            return self._app(environ, start_response)
        request = self._request_class(environ)
        status, headers, body = self._handler.dispatch(request, request.raw_url, dict(request.headers))
        data = body.encode("utf-8") if isinstance(body, str) else bytes(body or b"")
        header_list = [(str(name), str(value)) for name, value in headers.items() if name != "status"]
        header_list.append(("Content-Length", str(len(data))))
        code = int(headers.get("status", status))
        start_response(f"{code} {_reason(code)}", header_list)
        return [data]


def _reason(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Unknown"


def _install_plain_json_results() -> None:
    """Let moto's DynamoDB results of item operations skip the shape-walking serializer."""
    from moto.dynamodb.responses import DynamoResult  # noqa: PLC0415

    if getattr(DynamoResult, "_tenantry_plain_json", False):
        return
    serialize = DynamoResult.execute_result

    def execute_result(self: Any, context: Any) -> Any:
        if context.operation_model.name in PLAIN_JSON_OPERATIONS:
            try:
                body = json.dumps(self.result, separators=(",", ":"))
            except (TypeError, ValueError):
                pass  # not plain JSON (bytes, a date): moto's serializer knows the shape
            else:
                return 200, {"Content-Type": JSON_CONTENT_TYPE}, body
        return serialize(self, context)

    setattr(DynamoResult, "execute_result", execute_result)  # noqa: B010 - a patch
    setattr(DynamoResult, "_tenantry_plain_json", True)  # noqa: B010


def _install_method_name_cache() -> None:
    """Moto's per-request ``method_names_from_class``, computed once per handler class."""
    import functools  # noqa: PLC0415
    import inspect  # noqa: PLC0415

    from moto.core import responses  # noqa: PLC0415

    if getattr(responses, "_tenantry_method_cache", False):
        return

    @functools.cache
    def method_names_from_class(clazz: object) -> frozenset[str]:
        return frozenset(name for name, _ in inspect.getmembers(clazz, predicate=inspect.isfunction))

    setattr(responses, "method_names_from_class", method_names_from_class)  # noqa: B010 - a patch
    setattr(responses, "_tenantry_method_cache", True)  # noqa: B010


# Expressions are built by our own code from a few templates; the bound only guards memory.
EXPRESSION_CACHE_SIZE = 4096


def _install_expression_caches() -> None:
    """Moto's condition-expression lexing and update-expression parsing, cached by the text."""
    import functools  # noqa: PLC0415
    from collections import deque  # noqa: PLC0415

    from moto.dynamodb.comparisons import ConditionExpressionParser  # noqa: PLC0415
    from moto.dynamodb.parsing import expressions  # noqa: PLC0415

    if getattr(ConditionExpressionParser, "_tenantry_cached", False):
        return
    lex = ConditionExpressionParser._lex_condition_expression
    update_parser: Any = getattr(expressions, "UpdateExpressionParser")  # noqa: B009 - untyped for mypy
    parse_update = update_parser.make

    @functools.lru_cache(maxsize=EXPRESSION_CACHE_SIZE)
    def tokens(expression: str) -> tuple[Any, ...]:
        # Lexing reads nothing but the text (and the class's token kinds).
        return tuple(lex(ConditionExpressionParser(expression, None, None)))

    def cached_lex(self: Any) -> deque[Any]:
        # A fresh deque each time: the parser consumes it.
        return deque(tokens(self.condition_expression))

    @functools.lru_cache(maxsize=EXPRESSION_CACHE_SIZE)
    def cached_update(expression: str) -> Any:
        tree = parse_update(expression)
        # Copies of the tree (moto's validator works on one) carry it too: see the structural checks.
        setattr(tree, _EXPRESSION_TEXT, expression)
        return tree

    setattr(ConditionExpressionParser, "_lex_condition_expression", cached_lex)  # noqa: B010 - a patch
    setattr(update_parser, "make", staticmethod(cached_update))  # noqa: B010
    setattr(ConditionExpressionParser, "_tenantry_cached", True)  # noqa: B010


def _install_faster_traversal() -> None:
    """Moto's ``DepthFirstTraverser.traverse_node_recursively`` with its type tests remembered."""
    from moto.dynamodb.parsing import ast_nodes  # noqa: PLC0415

    traverser: Any = getattr(ast_nodes, "DepthFirstTraverser")  # noqa: B009 - untyped for mypy
    node_class: Any = getattr(ast_nodes, "Node")  # noqa: B009
    if getattr(traverser, "_tenantry_fast", False):
        return
    is_node: dict[type, bool] = {}
    processed: dict[tuple[type, type], bool] = {}

    def traverse_node_recursively(self: Any, node: Any, child_id: int = -1) -> Any:
        kind = type(node)
        node_kind = is_node.get(kind)
        if node_kind is None:
            node_kind = is_node[kind] = isinstance(node, node_class)
        if node_kind:
            parent_node = node.parent
            if node.children is not None:
                for index, child_node in enumerate(node.children):
                    self.pre_processing_of_child(node, index)
                    self.traverse_node_recursively(child_node, index)
            pair = (type(self), kind)
            takes = processed.get(pair)
            if takes is None:
                takes = processed[pair] = isinstance(node, self.nodes_to_be_processed())
            if takes:
                node = self.process(node)
                node.parent = parent_node
                if parent_node:
                    parent_node.children[child_id] = node
        return node

    setattr(traverser, "traverse_node_recursively", traverse_node_recursively)  # noqa: B010 - a patch
    setattr(traverser, "_tenantry_fast", True)  # noqa: B010


_EXPRESSION_TEXT = "_tenantry_expression_text"


def _install_structural_check_cache() -> None:
    """Moto's clause-count and overlapping-path checks, skipped for a shape that passed before."""
    from moto.dynamodb.parsing import validators  # noqa: PLC0415

    counts: Any = getattr(validators, "ActionCountValidator")  # noqa: B009 - untyped for mypy
    paths: Any = getattr(validators, "OverlappingPathsValidator")  # noqa: B009
    if getattr(counts, "_tenantry_cached", False):
        return
    check_counts = counts.traverse
    check_paths = paths.traverse
    passed: dict[Hashable, None] = {}

    def remember(key: Hashable) -> None:
        if len(passed) >= EXPRESSION_CACHE_SIZE:
            passed.clear()  # names vary with metering's counters; the bound only guards memory
        passed[key] = None

    def cached_counts(self: Any, node: Any) -> Any:
        text = getattr(node, _EXPRESSION_TEXT, None)
        key = ("counts", text)
        if text is None or key not in passed:
            node = check_counts(self, node)
            if text is not None:
                remember(key)
        return node

    def cached_paths(self: Any, node: Any) -> Any:
        text = getattr(node, _EXPRESSION_TEXT, None)
        key = ("paths", text, tuple(sorted((self.expression_attribute_names or {}).items())))
        if text is None or key not in passed:
            node = check_paths(self, node)
            if text is not None:
                remember(key)
        return node

    setattr(counts, "traverse", cached_counts)  # noqa: B010 - a patch
    setattr(paths, "traverse", cached_paths)  # noqa: B010
    setattr(counts, "_tenantry_cached", True)  # noqa: B010


_ATOMIC = (str, int, float, bool, type(None))


def _install_faster_tree_copy() -> None:
    """Moto's validators' ``deepcopy``, with a direct copy of syntax-tree nodes."""
    import copy  # noqa: PLC0415

    from moto.dynamodb.parsing import ast_nodes, validators  # noqa: PLC0415

    if getattr(validators, "_tenantry_tree_copy", False):
        return
    node_class: Any = getattr(ast_nodes, "Node")  # noqa: B009 - untyped for mypy
    is_node: dict[type, bool] = {}

    def node(value: Any) -> bool:
        kind = type(value)
        found = is_node.get(kind)
        if found is None:
            found = is_node[kind] = isinstance(value, node_class)
        return found

    def copy_value(value: Any, memo: dict[int, Any]) -> Any:
        if type(value) in _ATOMIC:
            return value
        if node(value):
            return copy_node(value, memo)
        if type(value) is list:
            found = memo.get(id(value))
            if found is None:
                found = memo[id(value)] = []
                found.extend(copy_value(item, memo) for item in value)
            return found
        return copy.deepcopy(value, memo)

    def copy_node(original: Any, memo: dict[int, Any]) -> Any:
        found = memo.get(id(original))
        if found is not None:
            return found
        new = object.__new__(type(original))
        memo[id(original)] = new
        new.__dict__.update({name: copy_value(value, memo) for name, value in original.__dict__.items()})
        return new

    def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
        return copy_value(value, {} if memo is None else memo)

    setattr(validators, "deepcopy", deepcopy)  # noqa: B010 - moto reads its module global
    setattr(validators, "_tenantry_tree_copy", True)  # noqa: B010
