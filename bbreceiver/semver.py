"""
Semantic versions and version constraints with the semantics of Go's
``github.com/Masterminds/semver/v3`` (SPEC §5, kargo-receiver.md §4.2).

Kargo's ``SemVer`` commit selector decides whether a pushed tag is a candidate
with that library, so the webhook receiver must reach the same verdict for
every tag and every ``semverConstraint``.  Python's own ``semver`` and
``packaging`` packages disagree with Masterminds on partial versions, x-ranges,
``||``, space-separated AND and, above all, on prereleases; hence this
re-implementation.  It is pure (standard library only, no I/O) and keeps
Masterminds' quirks on purpose: a tag that Kargo would not pick must not
trigger a refresh, and a tag that Kargo would pick must.

Where Masterminds uses regular expressions, the patterns here are the same
languages spelt for Python's ``re``: whitespace is Go's ``\\s``
(``[\\t\\n\\f\\r ]``), digits are ASCII only, anchors are full-string
matches (a trailing newline never matches).  Go's RE2 engine runs in linear
time whatever the input; Python's backtracking one does not, so the patterns
that a constraint or a tag reaches are written with possessive and atomic
groups, and hyphen ranges are found by a scan rather than an unanchored
search: a hostile ``semverConstraint`` or tag name cannot stall the reactor.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "Constraint",
    "InvalidConstraint",
    "InvalidVersion",
    "Version",
    "compare",
    "parse_constraint",
    "parse_strict_version",
    "parse_tag",
    "parse_version",
]


class InvalidVersion(ValueError):
    """
    The text is not a version that Masterminds would accept.
    """


class InvalidConstraint(ValueError):
    """
    The text is not a constraint that Masterminds ``NewConstraint`` would
    accept; Kargo then fails to build the selector.
    """


# Masterminds parses every numeric field with strconv.ParseUint(s, 10, 64).
_UINT64_MAX: Final = (1 << 64) - 1
_UINT64_MAX_DIGITS: Final = len(str(_UINT64_MAX))

# Go's RE2 ``\s``: narrower than Python's, which also takes \v and Unicode
# spaces.
_WS: Final = r"[\t\n\f\r ]"

_DIGITS: Final = re.compile(r"[0-9]+")
_IDENTIFIER: Final = re.compile(r"[0-9A-Za-z-]+")

# Masterminds ``looseSemVerRegex``, used by NewVersion in its default
# (CoerceNewVersion) mode: "v" prefix, optional minor and patch, leading zeros
# allowed in the three numbers.
_LOOSE_VERSION: Final = re.compile(
    r"v?([0-9]+)(?:\.([0-9]+))?(?:\.([0-9]+))?"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
)

# Masterminds ``cvRegex``, the version inside a constraint.  The character
# class really does contain "|" (a Go typo kept for fidelity: "1.x.|" parses,
# "1.|" does not).  Atomic: the greedy match is the only one that can be
# followed by a separator, so giving characters back is never useful, only
# slow.
_CV: Final = (
    r"(?>v?[0-9|xX*]+(?:\.[0-9|xX*]+)?(?:\.[0-9|xX*]+)?"
    r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?)"
)
_CV_AT: Final = re.compile(_CV)
# The operators, in Masterminds' order, which decides between "=" and "=>",
# "~" and "~>" and so on: the first alternative that lets a version follow.
_OPS: Final = r"=||!=|>|<|>=|=>|<=|=<|~|~>|\^"

# Masterminds ``validConstraintRegex``,
# ``^(\s*OP\s*CV\s*)((?:\s+|,\s*)OP\s*CV\s*)*$``, rewritten to the same
# language with unambiguous whitespace runs,
# ``\s*OP\s*CV((?:\s+|\s*,\s*)OP\s*CV)*\s*``, so that matching is linear.
_VALID_GROUP: Final = re.compile(
    rf"{_WS}*+(?:{_OPS}){_WS}*+{_CV}"
    rf"(?:(?:{_WS}++|{_WS}*+,{_WS}*+)(?:{_OPS}){_WS}*+{_CV})*+"
    rf"{_WS}*+"
)
# One comparator of a valid AND group, from where the previous one ended.
# Masterminds finds them with an unanchored ``findConstraintRegex`` and
# re-parses each with ``constraintRegex``; on a valid group both come to these
# tokens, without the quadratic rescans of whitespace.  Groups: operator,
# version, major, ".minor", ".patch", "-prerelease" (build metadata is not
# captured: Masterminds drops it from wildcard versions).
_COMPARATOR: Final = re.compile(
    rf"[\t\n\f\r ,]*+({_OPS}){_WS}*+"
    r"(v?([0-9|xX*]+)(\.[0-9|xX*]+)?(\.[0-9|xX*]+)?"
    r"(-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?)"
)

_X_WILDCARDS: Final = frozenset({"x", "X", "*"})

# A version's precedence key: major, minor, patch, 1 for a release or 0 for a
# prerelease (releases sort above their prereleases), then one entry per
# prerelease identifier, (0, value, "") for a number and (1, 0, text) for
# anything else (numbers sort below text, text sorts by bytes).  Python's
# tuple order then is semver 2.0 precedence as Masterminds computes it,
# shorter identifier lists sorting first.
_PrereleaseKey = tuple[tuple[int, int, str], ...]
_Key = tuple[int, int, int, int, _PrereleaseKey]


def _parse_uint64(digits: str) -> int | None:
    """
    Go's ``strconv.ParseUint(digits, 10, 64)`` for a string of ASCII digits.

    :return: the value, or None when it does not fit in 64 bits (Masterminds
        then rejects the version).  The length test keeps ``int()`` away from
        Python's limit on very long digit strings.
    """
    significant = digits.lstrip("0")
    if len(significant) > _UINT64_MAX_DIGITS:
        return None
    value = int(significant) if significant else 0
    return value if value <= _UINT64_MAX else None


def _prerelease_key(prerelease: str) -> _PrereleaseKey:
    """
    Masterminds' ``comparePrerelease``, precomputed: an identifier is numeric
    when ``ParseUint`` accepts it, so an all-digit identifier past 64 bits
    compares as text, as it does in Go.
    """
    parts: list[tuple[int, int, str]] = []
    for identifier in prerelease.split("."):
        number = (
            _parse_uint64(identifier)
            if _DIGITS.fullmatch(identifier)
            else None
        )
        if number is None:
            parts.append((1, 0, identifier))
        else:
            parts.append((0, number, ""))
    return tuple(parts)


@dataclass(frozen=True, eq=False)
class Version:
    """
    A semantic version as Masterminds represents it.

    Ordering and equality are semver 2.0 precedence, as Masterminds'
    ``Compare`` and ``Equal``: build metadata and the original spelling are
    ignored, so ``1.0``, ``v1.0.0`` and ``1.0.0+build`` are equal (and hash
    alike).  Kargo breaks such ties itself with :attr:`original`.

    :ivar major: the major number (at most 2**64 - 1).
    :ivar minor: the minor number (0 when the text had none).
    :ivar patch: the patch number (0 when the text had none).
    :ivar prerelease: the prerelease without its ``-``, ``""`` when none.
    :ivar metadata: the build metadata without its ``+``, ``""`` when none.
    :ivar original: the text the version was parsed from; defaults to the
        canonical form, as Masterminds' ``New`` does.
    """

    major: int
    minor: int
    patch: int
    prerelease: str = ""
    metadata: str = ""
    original: str = ""
    _key: _Key = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Precomputed once so that every comparison, and every constraint
        # check on the hot path, is a plain tuple comparison.
        key: _Key = (
            self.major,
            self.minor,
            self.patch,
            0 if self.prerelease else 1,
            _prerelease_key(self.prerelease) if self.prerelease else (),
        )
        object.__setattr__(self, "_key", key)
        if not self.original:
            object.__setattr__(self, "original", str(self))

    def __str__(self) -> str:
        """
        The canonical form, as Masterminds' ``String``: no ``v``, all three
        numbers, without leading zeros.
        """
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += f"-{self.prerelease}"
        if self.metadata:
            text += f"+{self.metadata}"
        return text

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key == other._key

    def __ne__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key != other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key < other._key

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key <= other._key

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key > other._key

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key >= other._key


def compare(a: Version, b: Version) -> int:
    """
    Masterminds' ``Compare``: -1, 0 or 1 as ``a`` precedes, equals or follows
    ``b``.  Useful as a ``functools.cmp_to_key`` comparator.
    """
    if a._key < b._key:
        return -1
    return 1 if a._key > b._key else 0


def _prerelease_is_valid(prerelease: str) -> bool:
    """
    Masterminds' ``validatePrerelease``: non-empty identifiers of
    ``[0-9A-Za-z-]``, numeric ones without a leading zero.
    """
    for identifier in prerelease.split("."):
        if not _IDENTIFIER.fullmatch(identifier):
            return False
        if (
            len(identifier) > 1
            and identifier[0] == "0"
            and _DIGITS.fullmatch(identifier)
        ):
            return False
    return True


def _metadata_is_valid(metadata: str) -> bool:
    """
    Masterminds' ``validateMetadata``: non-empty identifiers of
    ``[0-9A-Za-z-]`` (leading zeros are fine in build metadata).
    """
    return all(_IDENTIFIER.fullmatch(i) for i in metadata.split("."))


def parse_version(text: str) -> Version:
    """
    Parse like Masterminds' ``NewVersion`` (in its default coercing mode),
    which is how Kargo decides that a tag is a semantic version at all.

    Lenient on purpose: an optional lowercase ``v``, optional minor and patch
    (``1`` is ``1.0.0``), and leading zeros in the three numbers (``01.02`` is
    ``1.2.0``).  Not lenient on the prerelease (no empty identifiers, no
    leading zero in a numeric one) or the metadata, nor on surrounding
    whitespace, extra segments or numbers past 64 bits.

    :raises InvalidVersion: when Masterminds would return an error.
    """
    match = _LOOSE_VERSION.fullmatch(text)
    if match is None:
        raise InvalidVersion(f"invalid semantic version: {text!r}")
    major_s, minor_s, patch_s, prerelease, metadata = match.groups("")
    major = _parse_uint64(major_s)
    minor = _parse_uint64(minor_s) if minor_s else 0
    patch = _parse_uint64(patch_s) if patch_s else 0
    if major is None or minor is None or patch is None:
        raise InvalidVersion(f"version segment out of range: {text!r}")
    if prerelease and not _prerelease_is_valid(prerelease):
        raise InvalidVersion(f"invalid prerelease string: {text!r}")
    # The pattern already restricts metadata to what validateMetadata allows.
    return Version(major, minor, patch, prerelease, metadata, text)


def parse_strict_version(text: str) -> Version:
    """
    Parse like Masterminds' ``StrictNewVersion``: exactly
    ``MAJOR.MINOR.PATCH[-PRERELEASE][+METADATA]`` as semver 2.0 spells it, no
    ``v``, no leading zeros.  Kargo applies it, on the tag without one leading
    ``v``, when a subscription sets ``strictSemvers``.

    :raises InvalidVersion: when Masterminds would return an error.
    """
    # Follows Masterminds' hand-written parser step by step rather than a
    # pattern, so that odd inputs fail (or pass) exactly as they do there.
    parts = text.split(".", 2)
    if len(parts) != 3:
        raise InvalidVersion(f"invalid semantic version: {text!r}")
    rest = parts[2]
    metadata = prerelease = ""
    if "+" in rest:
        rest, metadata = rest.split("+", 1)
        if not _metadata_is_valid(metadata):
            raise InvalidVersion(f"invalid metadata string: {text!r}")
    if "-" in rest:
        rest, prerelease = rest.split("-", 1)
        if not _prerelease_is_valid(prerelease):
            raise InvalidVersion(f"invalid prerelease string: {text!r}")
    numbers: list[int] = []
    for segment in (parts[0], parts[1], rest):
        if not _DIGITS.fullmatch(segment):
            raise InvalidVersion(f"invalid characters in version: {text!r}")
        if len(segment) > 1 and segment[0] == "0":
            raise InvalidVersion(f"version segment starts with 0: {text!r}")
        number = _parse_uint64(segment)
        if number is None:
            raise InvalidVersion(f"version segment out of range: {text!r}")
        numbers.append(number)
    major, minor, patch = numbers
    return Version(major, minor, patch, prerelease, metadata, text)


def parse_tag(tag: str, strict: bool) -> Version | None:
    """
    Kargo's ``semver.Parse``: whether a tag name is a semantic version.

    The tag must pass :func:`parse_version`; with ``strict`` (the
    subscription's ``strictSemvers``) the tag less one leading ``v`` must also
    pass :func:`parse_strict_version`.  The lenient result is returned so that
    :attr:`Version.original` is the tag as pushed.

    :return: the version, or None when Kargo would skip the tag.
    """
    try:
        version = parse_version(tag)
        if strict:
            parse_strict_version(tag.removeprefix("v"))
    except InvalidVersion:
        return None
    return version


_Check = Callable[[Version], bool]


def _compile_comparator(op: str, con: Version, x_level: int) -> _Check:
    """
    Reduce one Masterminds comparator to a predicate on a version.

    Each branch is the corresponding Masterminds ``constraint*`` function with
    the constraint's fields folded in, which for most operators leaves a
    single tuple comparison.  The "is the version a prerelease the group does
    not ask for" test that opens every one of those functions is done once per
    AND group by :meth:`Constraint.check` instead.

    :param x_level: which field was a wildcard or missing: 0 none (a full
        version), 1 patch (``1.2``, ``1.2.x``: Masterminds' ``patchDirty``),
        2 minor (``1``, ``1.x``: ``minorDirty``), 3 major (``*``, ``x``: only
        ``dirty``; the version is then 0.0.0).
    """
    key = con._key
    major, minor, patch = con.major, con.minor, con.patch

    if op in ("", "="):
        if x_level == 0:
            return lambda v: v._key == key
        op = "~"  # constraintTildeOrEqual: a wildcard makes "=" a tilde.

    if op in ("~", "~>"):
        if (major, minor, patch) == (0, 0, 0) and x_level in (0, 3):
            # ~0.0.0 and ~*: anything at or above the constraint.
            return lambda v: v._key >= key
        if x_level == 2:
            return lambda v: v._key >= key and v.major == major
        return lambda v: (
            v._key >= key and v.major == major and v.minor == minor
        )

    if op == "^":
        if major > 0 or x_level == 2:
            return lambda v: v._key >= key and v.major == major
        if minor > 0 or x_level == 1:
            return lambda v: (
                v._key >= key and v.major == 0 and v.minor == minor
            )
        # ^0.0.3, and also ^0.0.0 and ^* (only 0.0.0 itself: a Masterminds
        # quirk, despite its comment saying "any").
        return lambda v: (
            v._key >= key and v.major == 0 and v.minor == 0
            and v.patch == patch
        )

    if op == "!=":
        if x_level == 2:
            return lambda v: v.major != major
        if x_level == 1:
            prerelease = con.prerelease
            return lambda v: (
                v.major != major or v.minor != minor
                or v.prerelease != prerelease
            )
        # A full version, or "*" (whose tests reduce to "not 0.0.0").
        return lambda v: v._key != key

    if op == ">":
        if x_level == 2:
            return lambda v: v.major > major
        if x_level == 1:
            return lambda v: (v.major, v.minor) > (major, minor)
        return lambda v: v._key > key

    if op in (">=", "=>"):
        return lambda v: v._key >= key

    if op == "<":
        # Masterminds ignores wildcards here: <1.x is <1.0.0.
        return lambda v: v._key < key

    if op in ("<=", "=<"):
        if x_level == 0:
            return lambda v: v._key <= key
        if x_level == 2:
            return lambda v: v.major <= major
        # <=1.2 and <=1.2.x; also <=*, which is <=0.0.x (a quirk).
        return lambda v: (v.major, v.minor) <= (major, minor)

    raise AssertionError(f"unhandled operator {op!r}")  # pragma: no cover


@dataclass(frozen=True)
class _Comparator:
    """
    One parsed comparator: its predicate, and what Masterminds' ``String``
    prints for it and whether its version carries a prerelease.
    """

    check: _Check
    text: str
    has_prerelease: bool


def _parse_group(group: str) -> tuple[_Comparator, ...]:
    """
    Masterminds' ``findConstraintRegex`` walk and ``parseConstraint`` for
    each comparator of an AND group that passed ``_VALID_GROUP``.

    :raises InvalidConstraint: when a version does not parse (a number past
        64 bits, a "|" in the wrong place, a leading zero in a numeric
        prerelease identifier...).
    """
    comparators: list[_Comparator] = []
    position = 0
    while match := _COMPARATOR.match(group, position):
        position = match.end()
        op, cv, major, minor, patch, dash_prerelease = match.groups("")
        # A wildcard or missing field ends the version there; Masterminds
        # then drops the fields after it (even "1.x.7" is "1.x") and the
        # build metadata, but keeps the prerelease.
        if major in _X_WILDCARDS:
            x_level, coerced = 3, f"0.0.0{dash_prerelease}"
        elif not minor or minor[1:] in _X_WILDCARDS:
            x_level, coerced = 2, f"{major}.0.0{dash_prerelease}"
        elif not patch or patch[1:] in _X_WILDCARDS:
            x_level, coerced = 1, f"{major}{minor}.0{dash_prerelease}"
        else:
            x_level, coerced = 0, cv
        try:
            con = parse_version(coerced)
        except InvalidVersion:
            raise InvalidConstraint(
                f"improper constraint: {op + cv!r}"
            ) from None
        comparators.append(
            _Comparator(
                _compile_comparator(op, con, x_level),
                op + cv,
                bool(con.prerelease),
            )
        )
    return tuple(comparators)


# A reverse automaton for the language of ``_CV``, for finding hyphen ranges
# in linear time: reading a version right to left, the states are "in the
# build metadata", "in the prerelease", "in the patch/minor/major number" and
# so on.  A set of states is a bit mask.
_R_START: Final = 1 << 0
_R_META: Final = 1 << 1  # in a metadata identifier
_R_META_DOT: Final = 1 << 2  # after a "." between metadata identifiers
_R_PLUS: Final = 1 << 3  # after the "+" before the metadata
_R_PRE: Final = 1 << 4  # in a prerelease identifier
_R_PRE_DOT: Final = 1 << 5
_R_DASH: Final = 1 << 6  # after the "-" before the prerelease
_R_NUM1: Final = 1 << 7  # in the last number field
_R_DOT1: Final = 1 << 8
_R_NUM2: Final = 1 << 9  # in the next-to-last one
_R_DOT2: Final = 1 << 10
_R_NUM3: Final = 1 << 11  # in the first of three
_R_V: Final = 1 << 12  # after the optional "v": the version starts here
_R_ACCEPT: Final = _R_NUM1 | _R_NUM2 | _R_NUM3 | _R_V
_IDENT_CHARS: Final = frozenset(
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-"
)
_NUMBER_CHARS: Final = frozenset("0123456789|xX*")
_WS_CHARS: Final = frozenset("\t\n\f\r ")
_SPACED_HYPHEN: Final = re.compile(rf"{_WS}-{_WS}")


def _step_back(states: int, char: str) -> int:
    """
    The states after reading ``char`` leftwards from ``states``.
    """
    after = 0
    if char in _IDENT_CHARS:
        if states & (_R_START | _R_META | _R_META_DOT):
            after |= _R_META
        if states & (_R_START | _R_PLUS | _R_PRE | _R_PRE_DOT):
            after |= _R_PRE
        if char == "-" and states & _R_PRE:
            after |= _R_DASH
        if char == "v" and states & (_R_NUM1 | _R_NUM2 | _R_NUM3):
            after |= _R_V
    if char in _NUMBER_CHARS:
        if states & (_R_START | _R_PLUS | _R_DASH | _R_NUM1):
            after |= _R_NUM1
        if states & (_R_DOT1 | _R_NUM2):
            after |= _R_NUM2
        if states & (_R_DOT2 | _R_NUM3):
            after |= _R_NUM3
    elif char == ".":
        if states & _R_META:
            after |= _R_META_DOT
        if states & _R_PRE:
            after |= _R_PRE_DOT
        if states & _R_NUM1:
            after |= _R_DOT1
        if states & _R_NUM2:
            after |= _R_DOT2
    elif char == "+" and states & _R_META:
        after |= _R_PLUS
    return after


def _leftmost_cv_ending_at(text: str, low: int, end: int) -> int | None:
    """
    The smallest ``start >= low`` such that ``text[start:end]`` is a whole
    ``_CV``, which is where an unanchored regex search would start it.
    """
    states, leftmost = _R_START, None
    for index in range(end - 1, low - 1, -1):
        states = _step_back(states, text[index])
        if not states:
            break
        if states & _R_ACCEPT:
            leftmost = index
    return leftmost


def _find_hyphen_ranges(text: str) -> list[tuple[int, int, str]]:
    """
    The hyphen ranges of a constraint, as Masterminds' unanchored
    ``\\s*(CV)\\s+-\\s+(CV)\\s*`` search finds them, with what replaces
    each: ``>= A, <= B ``.

    The search works outwards from each "-", which keeps a long run of
    spaces or digits from costing quadratic time as a regex search would.

    :return: (start, end, replacement) for each match, in order.
    """
    ranges: list[tuple[int, int, str]] = []
    position = 0  # where the previous match ended
    hyphen = text.find("-")
    while hyphen >= 0:
        first_end = hyphen
        while first_end > position and text[first_end - 1] in _WS_CHARS:
            first_end -= 1
        second = hyphen + 1
        while second < len(text) and text[second] in _WS_CHARS:
            second += 1
        second_match = None
        if first_end < hyphen and second > hyphen + 1:
            second_match = _CV_AT.match(text, second)
        first = (
            _leftmost_cv_ending_at(text, position, first_end)
            if second_match
            else None
        )
        if second_match is None or first is None:
            hyphen = text.find("-", hyphen + 1)
            continue
        start = first
        while start > position and text[start - 1] in _WS_CHARS:
            start -= 1
        end = second_match.end()
        while end < len(text) and text[end] in _WS_CHARS:
            end += 1
        replacement = f">= {text[first:first_end]}, <= {second_match[0]} "
        ranges.append((start, end, replacement))
        position = end
        hyphen = text.find("-", end)
    return ranges


def _rewrite_hyphen_ranges(text: str) -> str:
    """
    Masterminds' ``rewriteRange``: each ``A - B`` becomes ``>= A, <= B ``.

    Go rewrites with ``strings.Replace(o, match, repl, 1)``, that is at the
    first occurrence of the matched text in the string rewritten so far,
    which need not be where it was found.  An earlier occurrence would have
    to line its " - " up with a "-" between whitespace before the match, so
    while there is none the rewrite happens in place, in linear time; after
    that, the Go way (quadratic, as in Go).
    """
    ranges = _find_hyphen_ranges(text) if "-" in text else []
    if not ranges:
        return text
    pieces: list[str] = []  # the rewritten text before ``position``
    position = 0
    for index, (start, end, replacement) in enumerate(ranges):
        before = (pieces[-1][-1:] if pieces else "") + text[position:start + 1]
        if _SPACED_HYPHEN.search(before):
            rewritten = "".join(pieces) + text[position:]
            for later_start, later_end, later in ranges[index:]:
                rewritten = rewritten.replace(
                    text[later_start:later_end], later, 1
                )
            return rewritten
        pieces.append(text[position:start])
        pieces.append(replacement)
        position = end
    pieces.append(text[position:])
    return "".join(pieces)


class Constraint:
    """
    A parsed Masterminds constraint: AND groups joined by ``||``.

    Made by :func:`parse_constraint`, which does all the parsing and folding
    up front; :meth:`check` is then a few tuple comparisons per comparator.
    """

    __slots__ = ("_groups", "_string", "text")

    text: str
    _groups: tuple[tuple[bool, tuple[_Check, ...]], ...]
    _string: str

    def __init__(
        self, text: str, groups: tuple[tuple[_Comparator, ...], ...]
    ) -> None:
        """
        :param text: the constraint as written, kept for messages.
        :param groups: the parsed comparators of each OR alternative.
        """
        self.text = text
        # Masterminds' containsPre: a group looks at prereleases at all only
        # when one of its own comparators names one.
        self._groups = tuple(
            (
                any(c.has_prerelease for c in group),
                tuple(c.check for c in group),
            )
            for group in groups
        )
        self._string = " || ".join(
            " ".join(c.text for c in group) for group in groups
        )

    def check(self, version: Version) -> bool:
        """
        Masterminds' ``Constraints.Check`` (with ``IncludePrerelease`` false,
        as Kargo leaves it): true when every comparator of some OR group
        accepts the version.

        A prerelease version is considered only by groups that mention a
        prerelease themselves; it is then compared by plain precedence, so
        ``>=1.2.3-alpha`` accepts ``2.0.0-beta`` too (Masterminds departs from
        npm here).
        """
        is_prerelease = bool(version.prerelease)
        for include_prerelease, checks in self._groups:
            if is_prerelease and not include_prerelease:
                continue
            for check in checks:
                if not check(version):
                    break
            else:
                return True
        return False

    def __str__(self) -> str:
        """
        Masterminds' ``Constraints.String``: hyphen ranges expanded,
        comparators space-separated, whitespace inside them dropped.
        """
        return self._string

    def __repr__(self) -> str:
        return f"<Constraint {self.text!r}>"


def parse_constraint(text: str) -> Constraint:
    """
    Parse like Masterminds' ``NewConstraint``.

    Syntax: comparators ``OP VERSION`` with OP one of ``=`` (or none), ``!=``,
    ``>``, ``<``, ``>=``/``=>``, ``<=``/``=<``, ``~``/``~>``, ``^``; VERSION
    with an optional ``v``, possibly partial (``1.2``) or with wildcards
    (``1.2.x``, ``1.*``, ``X``); hyphen ranges ``A - B``; AND by commas or
    whitespace; OR by ``||``.

    :raises InvalidConstraint: for anything Masterminds rejects, including the
        empty string and empty ``||`` alternatives.  (Kargo itself treats an
        empty ``semverConstraint`` as "no constraint" and never parses it.)
    """
    groups: list[tuple[_Comparator, ...]] = []
    for alternative in _rewrite_hyphen_ranges(text).split("||"):
        if _VALID_GROUP.fullmatch(alternative) is None:
            raise InvalidConstraint(f"improper constraint: {alternative!r}")
        groups.append(_parse_group(alternative))
    return Constraint(text, tuple(groups))
