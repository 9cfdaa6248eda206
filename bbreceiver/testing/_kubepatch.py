"""
JSON merge patch (RFC 7386) and JSON patch (RFC 6902), the two patch types
the apiserver accepts for custom resources.  Pure functions over decoded
JSON; they never modify their arguments.

Written here rather than taken from a package to keep the stand-in free of
dependencies the daemon does not need.
"""

from __future__ import annotations

import copy
from typing import Any


class InvalidPatch(Exception):
    """
    The patch document itself is malformed (the server answers 400).
    """


class PatchConflict(Exception):
    """
    A well-formed JSON patch does not apply to the document: a missing path,
    a failed C{test} (the server answers 422).
    """


def merge_patch(target: Any, patch: Any) -> Any:
    """
    Apply an RFC 7386 merge patch: objects merge key by key, C{null} deletes
    a key, anything else (lists included) replaces the target whole.
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_equal(a: Any, b: Any) -> bool:
    """
    Equality of JSON values, where (unlike Python's C{==}) C{true} is not
    C{1}.
    """
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict):
        return (
            isinstance(b, dict)
            and a.keys() == b.keys()
            and all(json_equal(a[k], b[k]) for k in a)
        )
    if isinstance(a, list):
        return (
            isinstance(b, list)
            and len(a) == len(b)
            and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
        )
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and bool(a == b)


def parse_pointer(pointer: str) -> list[str]:
    """
    Split an RFC 6901 JSON pointer into unescaped reference tokens.
    """
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise InvalidPatch(f"JSON pointer must be empty or start with /: {pointer!r}")
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def escape_pointer_token(token: str) -> str:
    """
    The inverse of the unescaping in L{parse_pointer}, for building paths.
    """
    return token.replace("~", "~0").replace("/", "~1")


def _index(token: str, length: int, *, allow_end: bool) -> int:
    if allow_end and token == "-":
        return length
    if not token.isdigit() or (len(token) > 1 and token[0] == "0"):
        raise PatchConflict(f"invalid array index {token!r}")
    index = int(token)
    if index > length or (index == length and not allow_end):
        raise PatchConflict(f"array index {index} out of bounds")
    return index


def _parent(doc: Any, tokens: list[str], pointer: str) -> Any:
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict):
            if token not in node:
                raise PatchConflict(f"doc is missing path: {pointer!r}")
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(token, len(node), allow_end=False)]
        else:
            raise PatchConflict(f"doc is missing path: {pointer!r}")
    return node


def _get(doc: Any, pointer: str) -> Any:
    tokens = parse_pointer(pointer)
    if not tokens:
        return doc
    parent = _parent(doc, tokens, pointer)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchConflict(f"doc is missing path: {pointer!r}")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(last, len(parent), allow_end=False)]
    raise PatchConflict(f"doc is missing path: {pointer!r}")


def _add(doc: Any, pointer: str, value: Any) -> Any:
    tokens = parse_pointer(pointer)
    if not tokens:
        return value
    parent = _parent(doc, tokens, pointer)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(last, len(parent), allow_end=True), value)
    else:
        raise PatchConflict(f"doc is missing path: {pointer!r}")
    return doc


def _remove(doc: Any, pointer: str) -> tuple[Any, Any]:
    tokens = parse_pointer(pointer)
    if not tokens:
        raise PatchConflict("cannot remove the whole document")
    parent = _parent(doc, tokens, pointer)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchConflict(f"unable to remove nonexistent key: {pointer!r}")
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_index(last, len(parent), allow_end=False))
    raise PatchConflict(f"doc is missing path: {pointer!r}")


_OPERATIONS = ("add", "remove", "replace", "move", "copy", "test")


def _member(op: dict[str, Any], name: str) -> Any:
    if name not in op:
        raise InvalidPatch(f"operation {op.get('op')!r} is missing {name!r}")
    return op[name]


def _string_member(op: dict[str, Any], name: str) -> str:
    value = _member(op, name)
    if not isinstance(value, str):
        raise InvalidPatch(f"{name!r} must be a string")
    return value


def validate_json_patch(patch: Any) -> list[dict[str, Any]]:
    """
    Check the shape of a JSON patch document before applying anything, as
    the server decodes it first (C{jsonpatch.DecodePatch}).
    """
    if not isinstance(patch, list):
        raise InvalidPatch("a JSON patch must be a JSON array of operations")
    for op in patch:
        if not isinstance(op, dict) or op.get("op") not in _OPERATIONS:
            raise InvalidPatch(
                f"Unexpected kind: {op.get('op') if isinstance(op, dict) else op!r}"
            )
        _string_member(op, "path")
        if op["op"] in ("add", "replace", "test"):
            _member(op, "value")
        if op["op"] in ("move", "copy"):
            _string_member(op, "from")
    return patch


def json_patch(document: Any, patch: Any) -> Any:
    """
    Apply an RFC 6902 JSON patch: all operations or none.
    """
    doc = copy.deepcopy(document)
    for op in validate_json_patch(patch):
        path = op["path"]
        kind = op["op"]
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            doc, _ = _remove(doc, path)
        elif kind == "replace":
            _get(doc, path)
            if parse_pointer(path):
                doc, _ = _remove(doc, path)
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "move":
            source = op["from"]
            if path != source and path.startswith(source + "/"):
                raise PatchConflict(
                    f"cannot move {source!r} into its own child {path!r}"
                )
            doc, value = _remove(doc, source)
            doc = _add(doc, path, value)
        elif kind == "copy":
            doc = _add(doc, path, copy.deepcopy(_get(doc, op["from"])))
        else:
            if not json_equal(_get(doc, path), op["value"]):
                raise PatchConflict(f"testing value {path!r} failed")
    return doc
