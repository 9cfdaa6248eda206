"""
Which pushed refs a Warehouse's git subscription accepts, as Kargo's commit
selectors decide it (kargo-receiver.md §4.2, SPEC §5).

A subscription whose selector cannot be evaluated accepts every ref and
carries the reason in L{Selector.problem}: one broken Warehouse must never
stop a delivery from refreshing the others (Kargo answers 500 and refreshes
nothing; §11.6 of the study).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from bbreceiver.semver import InvalidConstraint, parse_constraint, parse_tag

HEADS = "refs/heads/"
TAGS = "refs/tags/"

_DEFAULT_BRANCHES = frozenset({"main", "master"})
_TAG_STRATEGIES = frozenset({"NewestTag", "Lexical", "SemVer"})
_PATTERN_FIELDS = frozenset(
    {"allowTags", "ignoreTags", "allowTagsRegexes", "ignoreTagsRegexes"}
)


class Selector:
    """
    Decides whether a subscription accepts a fully qualified ref.

    @ivar problem: why the subscription could not be evaluated (and so
        accepts everything), or C{None}.
    """

    __slots__ = ("problem",)

    def __init__(self, problem: str | None = None) -> None:
        self.problem = problem

    def accepts(self, ref: str) -> bool:
        """
        Everything, for a subscription that cannot be evaluated.
        """
        return True

    def accepts_any(self, refs: Iterable[str]) -> bool:
        """
        Whether one of C{refs} is accepted.
        """
        return any(self.accepts(ref) for ref in refs)


class AnySelector(Selector):
    """
    Several subscriptions of one Warehouse to one repository: a ref that
    any of them accepts.
    """

    __slots__ = ("selectors",)

    def __init__(self, selectors: tuple[Selector, ...]) -> None:
        super().__init__()
        self.selectors = selectors

    @classmethod
    def of(cls, first: Selector, second: Selector) -> AnySelector:
        """
        The selector accepting what C{first} or C{second} accepts.
        """
        found = first.selectors if isinstance(first, AnySelector) else (first,)
        return cls(found + (second,))

    def accepts(self, ref: str) -> bool:
        return any(selector.accepts(ref) for selector in self.selectors)

    def __eq__(self, other: object) -> bool:
        # An unchanged Warehouse must compare equal to what is indexed.
        if not isinstance(other, AnySelector):
            return NotImplemented
        return self.selectors == other.selectors

    def __hash__(self) -> int:
        return hash(self.selectors)


class BranchSelector(Selector):
    """
    C{NewestFromBranch}: a push to the subscribed branch, or to C{main} or
    C{master} when none is named (Kargo's guess at the default branch).
    """

    __slots__ = ("branches",)

    def __init__(self, branch: str) -> None:
        super().__init__()
        self.branches = frozenset({branch}) if branch else _DEFAULT_BRANCHES

    def accepts(self, ref: str) -> bool:
        return ref.startswith(HEADS) and ref[len(HEADS):] in self.branches


class TagSelector(Selector):
    """
    C{NewestTag}, C{Lexical} and C{SemVer}: a tag that no ignore pattern
    and (when there are any) some allow pattern finds, and for C{SemVer} a
    semantic version within the constraint.
    """

    __slots__ = ("allow", "ignore", "semver", "strict", "constraint")

    def __init__(
        self,
        allow: tuple[re.Pattern[str], ...],
        ignore: tuple[re.Pattern[str], ...],
        semver: bool = False,
        strict: bool = False,
        constraint: Any = None,
    ) -> None:
        super().__init__()
        self.allow = allow
        self.ignore = ignore
        self.semver = semver
        self.strict = strict
        self.constraint = constraint

    def accepts(self, ref: str) -> bool:
        if not ref.startswith(TAGS):
            return False
        tag = ref[len(TAGS):]
        if any(pattern.search(tag) for pattern in self.ignore):
            return False
        if self.allow and not any(p.search(tag) for p in self.allow):
            return False
        if not self.semver:
            return True
        version = parse_tag(tag, self.strict)
        if version is None:
            return False
        return self.constraint is None or bool(self.constraint.check(version))


def compile_selector(git: Mapping[str, Any]) -> Selector:
    """
    The selector of one C{spec.subscriptions[].git} object.
    """
    strategy = git.get("commitSelectionStrategy")
    if strategy is None or strategy == "NewestFromBranch":
        # Most subscriptions: skip building a key for the general cache.
        branch = git.get("branch")
        if branch is None or isinstance(branch, str):
            return _branch_selector(branch or "")
    elif _PATTERN_FIELDS.isdisjoint(git):
        # Most tag subscriptions name no patterns: their scalar fields
        # are the whole key, with no tuple of patterns to build.
        constraint = git.get("semverConstraint")
        strict = git.get("strictSemvers")
        if (
            isinstance(strategy, str)
            and (constraint is None or isinstance(constraint, str))
            and (strict is None or isinstance(strict, bool))
        ):
            return _tag_selector(strategy, constraint or "", bool(strict))
    try:
        key = _selector_key(git)
    except _Unusable as e:
        return Selector(str(e))
    return _compile(key)


class _Unusable(Exception):
    pass


def _field(git: Mapping[str, Any], name: str, kind: type) -> Any:
    value = git.get(name)
    if value is not None and not isinstance(value, kind):
        raise _Unusable("{} is not a {}".format(name, kind.__name__))
    return value


def _strings(git: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = _field(git, name, list) or []
    if not all(isinstance(item, str) for item in value):
        raise _Unusable("{} holds a value that is not a string".format(name))
    return tuple(value)


def _selector_key(git: Mapping[str, Any]) -> tuple[Any, ...]:
    """
    The fields that decide a selector, as a hashable value, so that the
    many Warehouses which share a selector share one object.
    """
    strategy = _field(git, "commitSelectionStrategy", str) or (
        "NewestFromBranch"
    )
    if strategy == "NewestFromBranch":
        return (strategy, _field(git, "branch", str) or "")
    if strategy not in _TAG_STRATEGIES:
        raise _Unusable(
            "unknown commitSelectionStrategy {!r}".format(strategy)
        )
    if _field(git, "allowTags", str):
        raise _Unusable("allowTags is deprecated; use allowTagsRegexes")
    if _strings(git, "ignoreTags"):
        raise _Unusable("ignoreTags is deprecated; use ignoreTagsRegexes")
    allow = _strings(git, "allowTagsRegexes")
    ignore = _strings(git, "ignoreTagsRegexes")
    if strategy != "SemVer":
        return (strategy, allow, ignore)
    return (
        strategy,
        allow,
        ignore,
        _field(git, "semverConstraint", str) or "",
        bool(_field(git, "strictSemvers", bool)),
    )


@lru_cache(maxsize=4096)
def _branch_selector(branch: str) -> Selector:
    return BranchSelector(branch)


@lru_cache(maxsize=4096)
def _tag_selector(strategy: str, constraint: str, strict: bool) -> Selector:
    try:
        key = _selector_key({"commitSelectionStrategy": strategy,
                             "semverConstraint": constraint,
                             "strictSemvers": strict})
    except _Unusable as e:
        return Selector(str(e))
    return _compile(key)


@lru_cache(maxsize=4096)
def _compile(key: tuple[Any, ...]) -> Selector:
    strategy = key[0]
    if strategy == "NewestFromBranch":
        return _branch_selector(key[1])
    try:
        allow = tuple(re.compile(p) for p in key[1])
        ignore = tuple(re.compile(p) for p in key[2])
    except (re.error, RecursionError, OverflowError) as e:
        return Selector("a tag regex does not compile: {}".format(e))
    if strategy != "SemVer":
        return TagSelector(allow, ignore)
    constraint = None
    if key[3]:
        try:
            constraint = parse_constraint(key[3])
        except InvalidConstraint as e:
            return Selector(
                "semverConstraint {!r} does not parse: {}".format(key[3], e)
            )
    return TagSelector(allow, ignore, semver=True, strict=key[4],
                       constraint=constraint)
