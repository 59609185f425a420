"""JSON Merge Patch (RFC 7386) and JSON Patch (RFC 6902), written for this test server."""
from __future__ import annotations

import copy
import json


class PatchError(Exception):
    """A patch that cannot be applied to the document (HTTP 422 on the real server)."""


class PatchFormatError(Exception):
    """A patch document that cannot be decoded (HTTP 400 on the real server)."""


def merge_patch(target, patch):
    """RFC 7386: objects merge recursively, `null` deletes a member, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# --- RFC 6902 ---------------------------------------------------------------------------------

def _parse_pointer(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchFormatError(f"JSON pointer must start with '/': {pointer!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in pointer[1:].split("/")]


def _index(container: list, token: str, pointer: str, *, allow_end: bool = False) -> int:
    if allow_end and token == "-":
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise PatchError(f"invalid array index {token!r} in path {pointer!r}")
    i = int(token)
    limit = len(container) if allow_end else len(container) - 1
    if i > limit:
        raise PatchError(f"array index {i} out of bounds in path {pointer!r}")
    return i


def _parent(doc, pointer: str):
    tokens = _parse_pointer(pointer)
    if not tokens:
        raise PatchError(f"cannot operate on the document root with path {pointer!r}")
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict):
            if token not in node:
                raise PatchError(f"doc is missing path: {pointer!r}")
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, pointer)]
        else:
            raise PatchError(f"doc is missing path: {pointer!r}")
    return node, tokens[-1]


def _get(doc, pointer: str):
    node = doc
    for token in _parse_pointer(pointer):
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, pointer)]
        else:
            raise PatchError(f"doc is missing path: {pointer!r}")
    return node


def _add(doc, pointer: str, value):
    if pointer == "":
        return copy.deepcopy(value)
    parent, token = _parent(doc, pointer)
    if isinstance(parent, dict):
        parent[token] = copy.deepcopy(value)
    elif isinstance(parent, list):
        parent.insert(_index(parent, token, pointer, allow_end=True), copy.deepcopy(value))
    else:
        raise PatchError(f"doc is missing path: {pointer!r}")
    return doc


def _remove(doc, pointer: str):
    parent, token = _parent(doc, pointer)
    if isinstance(parent, dict):
        if token not in parent:
            raise PatchError(f"remove operation does not apply: doc is missing path: {pointer!r}")
        return parent.pop(token)
    if isinstance(parent, list):
        return parent.pop(_index(parent, token, pointer))
    raise PatchError(f"remove operation does not apply: doc is missing path: {pointer!r}")


def _json_equal(a, b) -> bool:
    """Equality of JSON values; unlike Python's ==, `true` is not equal to `1`."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


def json_patch(doc, operations):
    """Apply an RFC 6902 operation list to a deep copy of `doc` and return the result."""
    if not isinstance(operations, list):
        raise PatchFormatError("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(doc)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchFormatError(f"invalid JSON patch operation: {json.dumps(op)}")
        kind, path = op["op"], op["path"]
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchFormatError(f"{kind} operation requires a value: {json.dumps(op)}")
        if kind == "add":
            doc = _add(doc, path, op["value"])
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "replace":
            if path == "":
                doc = copy.deepcopy(op["value"])
                continue
            try:
                _get(doc, path)
            except PatchError:
                raise PatchError(f"replace operation does not apply: doc is missing key: {path}") from None
            parent, token = _parent(doc, path)
            if isinstance(parent, list):
                parent[_index(parent, token, path)] = copy.deepcopy(op["value"])
            else:
                parent[token] = copy.deepcopy(op["value"])
        elif kind in ("move", "copy"):
            if "from" not in op:
                raise PatchFormatError(f"{kind} operation requires 'from': {json.dumps(op)}")
            value = copy.deepcopy(_get(doc, op["from"]))
            if kind == "move":
                _remove(doc, op["from"])
            doc = _add(doc, path, value)
        elif kind == "test":
            try:
                current = _get(doc, path)
            except PatchError:
                current = None
            if not _json_equal(current, op["value"]):
                raise PatchError(f"testing value {path} failed: test failed")
        else:
            raise PatchFormatError(f"Unexpected kind: {kind}")
    return doc
