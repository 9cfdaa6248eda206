"""
Label and field selectors, as the apiserver parses them from
C{labelSelector} and C{fieldSelector}.  Pure.

Label selectors support the whole set-based grammar (C{a=b}, C{a==b},
C{a!=b}, C{a in (x,y)}, C{a notin (x)}, C{a}, C{!a}); field selectors support
C{=}, C{==} and C{!=} on the fields a resource declares selectable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


class SelectorError(ValueError):
    """
    The selector does not parse, or names a field that cannot be selected
    on (the server answers 400).
    """


_LABEL_TOKEN = re.compile(r"\s*(?:(==|!=|=|!|\(|\)|,)|([^\s=!(),]+))")
_LABEL_NAME = re.compile(
    r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


@dataclass(frozen=True)
class Requirement:
    """
    One requirement of a label selector; C{operator} is one of C{=}, C{!=},
    C{in}, C{notin}, C{exists}, C{!}.
    """

    key: str
    operator: str
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator == "exists":
            return present
        if self.operator == "!":
            return not present
        if self.operator in ("=", "in"):
            return present and labels[self.key] in self.values
        # "!=" and "notin" match objects without the label too.
        return not present or labels[self.key] not in self.values


@dataclass(frozen=True)
class LabelSelector:
    """
    A conjunction of requirements; the empty selector matches everything.
    """

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _LABEL_TOKEN.match(text, pos)
        if match is None:
            raise SelectorError(
                f"unable to parse requirement: unexpected input at {text[pos:]!r}"
            )
        out.append(match.group(1) or match.group(2))
        pos = match.end()
    return out


def _check_key(key: str) -> str:
    if not _LABEL_NAME.match(key):
        raise SelectorError(f"unable to parse requirement: invalid label key {key!r}")
    return key


def _check_value(value: str) -> str:
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        raise SelectorError(
            f"unable to parse requirement: invalid label value {value!r}"
        )
    return value


def parse_label_selector(text: str) -> LabelSelector:
    """
    Parse a C{labelSelector} query parameter.
    """
    tokens = _tokens(text)
    requirements: list[Requirement] = []
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    while pos < len(tokens):
        if tokens[pos] == "!":
            pos += 1
            key = peek()
            if key is None or key in "=!(),":
                raise SelectorError(
                    "unable to parse requirement: '!' must be followed by a key"
                )
            requirements.append(Requirement(_check_key(key), "!"))
            pos += 1
        else:
            key = _check_key(tokens[pos])
            pos += 1
            op = peek()
            if op is None or op == ",":
                requirements.append(Requirement(key, "exists"))
            elif op in ("=", "==", "!="):
                pos += 1
                value = peek()
                if value is None or value == ",":
                    value = ""
                else:
                    pos += 1
                requirements.append(
                    Requirement(
                        key,
                        "!=" if op == "!=" else "=",
                        frozenset({_check_value(value)}),
                    )
                )
            elif op in ("in", "notin"):
                pos += 1
                if peek() != "(":
                    raise SelectorError(
                        f"unable to parse requirement: expected '(' after {op!r}"
                    )
                pos += 1
                values: set[str] = set()
                expect_value = True
                while True:
                    token = peek()
                    if token is None:
                        raise SelectorError("unable to parse requirement: unclosed '('")
                    pos += 1
                    if token == ")":
                        if expect_value:
                            values.add("")
                        break
                    if token == ",":
                        if expect_value:
                            values.add("")
                        expect_value = True
                    elif expect_value:
                        values.add(_check_value(token))
                        expect_value = False
                    else:
                        raise SelectorError(
                            f"unable to parse requirement: unexpected {token!r}"
                        )
                requirements.append(Requirement(key, op, frozenset(values)))
            else:
                raise SelectorError(
                    f"unable to parse requirement: unexpected {op!r} after {key!r}"
                )
        token = peek()
        if token is not None:
            if token != ",":
                raise SelectorError(
                    f"unable to parse requirement: expected ',' but got {token!r}"
                )
            pos += 1
            if peek() is None:
                raise SelectorError("unable to parse requirement: trailing ','")
    return LabelSelector(tuple(requirements))


@dataclass(frozen=True)
class FieldTerm:
    """
    One C{field=value} / C{field!=value} term of a field selector.
    """

    field: str
    value: str
    negated: bool


@dataclass(frozen=True)
class FieldSelector:
    """
    A conjunction of field terms; the empty selector matches everything.
    """

    terms: tuple[FieldTerm, ...] = ()

    def matches(self, fields: Mapping[str, str]) -> bool:
        return all(
            (fields.get(t.field, "") == t.value) != t.negated for t in self.terms
        )

    @property
    def empty(self) -> bool:
        return not self.terms

    def exact(self, name: str) -> str | None:
        """
        The value C{name} must equal, if a term requires one.
        """
        for term in self.terms:
            if term.field == name and not term.negated:
                return term.value
        return None


def _split_unescaped(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            current.append("\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if escaped:
        current.append("\\")
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def parse_field_selector(text: str, selectable: Sequence[str]) -> FieldSelector:
    """
    Parse a C{fieldSelector} query parameter, refusing fields the resource
    does not index (as C{ConvertFieldLabel} does for custom resources).
    """
    if not text.strip():
        return FieldSelector()
    terms: list[FieldTerm] = []
    for raw in _split_unescaped(text, ","):
        for op in ("!=", "==", "="):
            index = raw.find(op)
            if index > 0:
                name = raw[:index].strip()
                value = _unescape(raw[index + len(op) :])
                break
        else:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{raw}'")
        if name not in selectable:
            raise SelectorError(f"field label not supported: {name}")
        terms.append(FieldTerm(name, value, op == "!="))
    return FieldSelector(tuple(terms))


def object_fields(obj: Mapping[str, Any], selectable: Sequence[str]) -> dict[str, str]:
    """
    The values of an object's selectable fields (missing ones are C{""}).
    """
    out: dict[str, str] = {}
    for path in selectable:
        node: Any = obj
        for part in path.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        out[path] = node if isinstance(node, str) else ""
    return out
