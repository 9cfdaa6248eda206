"""
Tests for ``bbreceiver.semver``: Masterminds semver v3 semantics in Python.

Most tables are re-typed from Masterminds' own tests (constraints_test.go and
version_test.go at github.com/Masterminds/semver, master 71f2b39, the code of
v3.4.0+ and of the v3.5.0 that Kargo pins); each names its source.  The
"quirk" tables were checked case by case against that Go code run as a
harness; they pin behaviour that the upstream tests leave implicit.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from bbreceiver import semver
from bbreceiver.semver import (
    Constraint,
    InvalidConstraint,
    InvalidVersion,
    Version,
    compare,
    parse_constraint,
    parse_strict_version,
    parse_tag,
    parse_version,
)

# version_test.go TestNewVersion, "With loose NewVersion": (text, valid).
LENIENT_VERSIONS: list[tuple[str, bool]] = [
    ("1.2.3", True),
    ("1.2.3-alpha.01", False),
    ("1.2.3+test.01", True),
    ("1.2.3-alpha.-1", True),
    ("v1.2.3", True),
    ("1.0", True),
    ("v1.0", True),
    ("1", True),
    ("v1", True),
    ("1.2.beta", False),
    ("v1.2.beta", False),
    ("foo", False),
    ("1.2-5", True),
    ("v1.2-5", True),
    ("1.2-beta.5", True),
    ("v1.2-beta.5", True),
    ("\n1.2", False),
    ("\nv1.2", False),
    ("1.2.0-x.Y.0+metadata", True),
    ("v1.2.0-x.Y.0+metadata", True),
    ("1.2.0-x.Y.0+metadata-width-hypen", True),
    ("v1.2.0-x.Y.0+metadata-width-hypen", True),
    ("1.2.3-rc1-with-hypen", True),
    ("v1.2.3-rc1-with-hypen", True),
    ("1.2.3-0abc123", True),
    ("1.2.3-beta.01", False),
    ("1.2.3.4", False),
    ("v1.2.3.4", False),
    ("1.2.2147483648", True),
    ("1.2147483648.3", True),
    ("2147483648.3.0", True),
    ("12.3.4.1234", False),
    ("12.23.4.1234", False),
    ("12.3.34.1234", False),
    ("20221209-update-renovatejson-v4", True),
    ("1.1.2+.123", False),
    ("1.0.0-alpha_beta", False),
    ("1.0.0-alpha..", False),
    ("1.0.0-alpha..1", False),
    ("9.8.7+meta+meta", False),
    ("1.2.31----RC-SNAPSHOT.12.09.1--.12+788", False),
    ("01.1.1", True),
    ("1.01.1", True),
    ("1.1.01", True),
]

# version_test.go TestStrictNewVersion: (text, valid).
STRICT_VERSIONS: list[tuple[str, bool]] = [
    ("1.2.3", True),
    ("1.2.3-alpha.01", False),
    ("1.2.3+test.01", True),
    ("1.2.3-alpha.-1", True),
    ("v1.2.3", False),
    ("1.0", False),
    ("v1.0", False),
    ("1", False),
    ("v1", False),
    ("1.2", False),
    ("1.2.beta", False),
    ("v1.2.beta", False),
    ("foo", False),
    ("1.2-5", False),
    ("v1.2-5", False),
    ("1.2-beta.5", False),
    ("v1.2-beta.5", False),
    ("\n1.2", False),
    ("\nv1.2", False),
    ("1.2.0-x.Y.0+metadata", True),
    ("v1.2.0-x.Y.0+metadata", False),
    ("1.2.0-x.Y.0+metadata-width-hypen", True),
    ("v1.2.0-x.Y.0+metadata-width-hypen", False),
    ("1.2.3-rc1-with-hypen", True),
    ("1.2.3-0abc123", True),
    ("1.2.3-beta.01", False),
    ("v1.2.3-rc1-with-hypen", False),
    ("1.2.3.4", False),
    ("v1.2.3.4", False),
    ("1.2.2147483648", True),
    ("1.2147483648.3", True),
    ("2147483648.3.0", True),
    ("20221209-update-renovatejson-v4", False),
    ("1.1.2+.123", False),
    ("1.0.0-alpha_beta", False),
    ("1.0.0-alpha..", False),
    ("1.0.0-alpha..1", False),
    ("01.1.1", False),
    ("1.01.1", False),
    ("1.1.01", False),
    ("9.8.7+meta+meta", False),
    ("1.2.31----RC-SNAPSHOT.12.09.1--.12+788", False),
    ("1.2.3-0123", False),
    ("1.2.3-0123.0123", False),
    ("+invalid", False),
    ("-invalid", False),
    ("-invalid.01", False),
    ("alpha+beta", False),
    ("1.2.3-alpha_beta+foo", False),
    ("1.0.0-alpha..1", False),
]

# Version parsing edge cases, checked against the Go harness:
# (text, lenient result, strict result), a result being
# (major, minor, patch, prerelease, metadata) or None for an error.
_V = tuple[int, int, int, str, str]
VERSION_QUIRKS: list[tuple[str, _V | None, _V | None]] = [
    ("v01.02.03", (1, 2, 3, "", ""), None),
    ("00000000000000000000001.0.0", (1, 0, 0, "", ""), None),
    ("18446744073709551615.0.0", (2**64 - 1, 0, 0, "", ""),
     (2**64 - 1, 0, 0, "", "")),
    ("18446744073709551616.0.0", None, None),
    ("18446744073709551616", None, None),
    ("1.2.3-99999999999999999999999",
     (1, 2, 3, "99999999999999999999999", ""),
     (1, 2, 3, "99999999999999999999999", "")),
    ("V1.2.3", None, None),
    (" 1.2.3", None, None),
    ("1.2.3 ", None, None),
    ("1.2.3\n", None, None),
    ("\u0661.2.3", None, None),  # a non-ASCII digit
    ("1.2.3-0", (1, 2, 3, "0", ""), (1, 2, 3, "0", "")),
    ("1.2.3-00", None, None),
    ("1.2.3+00", (1, 2, 3, "", "00"), (1, 2, 3, "", "00")),
    ("1.2.3-a..b", None, None),
    ("", None, None),
    ("v", None, None),
    ("vv1", None, None),
    ("1.2.3-beta+", None, None),
    ("1.2.3+a+b", None, None),
    ("1.2.3-+a", None, None),
    ("1.2.3+a-b", (1, 2, 3, "", "a-b"), (1, 2, 3, "", "a-b")),
    ("1.2.3-a+b-c", (1, 2, 3, "a", "b-c"), (1, 2, 3, "a", "b-c")),
    ("1..3", None, None),
    ("1.2.3--", (1, 2, 3, "-", ""), (1, 2, 3, "-", "")),
    ("v1.2.3-rc.1+build.5", (1, 2, 3, "rc.1", "build.5"), None),
    ("1.2.3-x.7.z.92", (1, 2, 3, "x.7.z.92", ""),
     (1, 2, 3, "x.7.z.92", "")),
]

# version_test.go TestCoerceString: text -> canonical string.
COERCED_STRINGS: list[tuple[str, str]] = [
    ("1.2.3", "1.2.3"),
    ("v1.2.3", "1.2.3"),
    ("1.0", "1.0.0"),
    ("v1.0", "1.0.0"),
    ("1", "1.0.0"),
    ("v1", "1.0.0"),
    ("1.2-5", "1.2.0-5"),
    ("v1.2-5", "1.2.0-5"),
    ("1.2-beta.5", "1.2.0-beta.5"),
    ("v1.2-beta.5", "1.2.0-beta.5"),
    ("1.2.0-x.Y.0+metadata", "1.2.0-x.Y.0+metadata"),
    ("v1.2.0-x.Y.0+metadata", "1.2.0-x.Y.0+metadata"),
    ("1.2.0-x.Y.0+metadata-width-hypen", "1.2.0-x.Y.0+metadata-width-hypen"),
    ("v1.2.0-x.Y.0+metadata-width-hypen",
     "1.2.0-x.Y.0+metadata-width-hypen"),
    ("1.2.3-rc1-with-hypen", "1.2.3-rc1-with-hypen"),
    ("v1.2.3-rc1-with-hypen", "1.2.3-rc1-with-hypen"),
]

# version_test.go TestCompare, then TestLessThan, TestGreaterThan and
# TestEqual recast as Compare results, then SemVer 2.0 §11's own example
# chain and identifiers past 64 bits (checked against the Go harness).
COMPARISONS: list[tuple[str, str, int]] = [
    ("1.2.3", "1.5.1", -1),
    ("2.2.3", "1.5.1", 1),
    ("2.2.3", "2.2.2", 1),
    ("3.2-beta", "3.2-beta", 0),
    ("1.3", "1.1.4", 1),
    ("4.2", "4.2-beta", 1),
    ("4.2-beta", "4.2", -1),
    ("4.2-alpha", "4.2-beta", -1),
    ("4.2-alpha", "4.2-alpha", 0),
    ("4.2-beta.2", "4.2-beta.1", 1),
    ("4.2-beta2", "4.2-beta1", 1),
    ("4.2-beta", "4.2-beta.2", -1),
    ("4.2-beta", "4.2-beta.foo", -1),
    ("4.2-beta.2", "4.2-beta", 1),
    ("4.2-beta.foo", "4.2-beta", 1),
    ("1.2+bar", "1.2+baz", 0),
    ("1.0.0-beta.4", "1.0.0-beta.-2", -1),
    ("1.0.0-beta.-2", "1.0.0-beta.-3", -1),
    ("1.0.0-beta.-3", "1.0.0-beta.5", 1),
    ("3.2.0-beta.1", "3.2.0-beta.5", -1),
    ("3.2-beta.4", "3.2-beta.2", 1),
    ("7.43.0-SNAPSHOT.99", "7.43.0-SNAPSHOT.103", -1),
    ("7.43.0-SNAPSHOT.FOO", "7.43.0-SNAPSHOT.103", 1),
    ("7.43.0-SNAPSHOT.99", "7.43.0-SNAPSHOT.BAR", -1),
    ("1.5.1", "1.5.1", 0),
    ("3.2-beta+foo", "3.2-beta+bar", 0),
    ("1.0.0-alpha", "1.0.0-alpha.1", -1),
    ("1.0.0-alpha.1", "1.0.0-alpha.beta", -1),
    ("1.0.0-alpha.beta", "1.0.0-beta", -1),
    ("1.0.0-beta", "1.0.0-beta.2", -1),
    ("1.0.0-beta.2", "1.0.0-beta.11", -1),
    ("1.0.0-beta.11", "1.0.0-rc.1", -1),
    ("1.0.0-rc.1", "1.0.0", -1),
    ("1.0.0-Alpha", "1.0.0-alpha", -1),
    ("1.0.0-a-b", "1.0.0-a", 1),
    ("1.0", "v1.0.0+build", 0),
    # A numeric-looking identifier that ParseUint rejects compares as text.
    ("1.2.3-99999999999999999999999", "1.2.3-alpha", -1),
    ("1.2.3-99999999999999999999999", "1.2.3-18446744073709551615", 1),
    ("1.2.3-18446744073709551615", "1.2.3-9", 1),
]

# constraints_test.go TestConstraintCheck (single comparators).  Its three
# rows for "" test parseConstraint's special case, which NewConstraint never
# reaches: NewConstraint("") is an error (see INVALID_CONSTRAINTS).
SINGLE_CHECKS: list[tuple[str, str, bool]] = [
    ("=2.0.0", "1.2.3", False),
    ("=2.0.0", "2.0.0", True),
    ("=2.0", "1.2.3", False),
    ("=2.0", "2.0.0", True),
    ("=2.0", "2.0.1", True),
    ("4.1", "4.1.0", True),
    ("!=4.1.0", "4.1.0", False),
    ("!=4.1.0", "4.1.1", True),
    ("!=4.1", "4.1.0", False),
    ("!=4.1", "4.1.1", False),
    ("!=4.1", "5.1.0-alpha.1", False),
    ("!=4.1.0", "5.1.0-alpha.1", False),
    ("!=4.1-alpha", "4.1.0", True),
    ("!=4.1", "5.1.0", True),
    ("<11", "0.1.0", True),
    ("<11", "11.1.0", False),
    ("<1.1", "0.1.0", True),
    ("<1.1", "1.1.0", False),
    ("<1.1", "1.1.1", False),
    ("<=11", "1.2.3", True),
    ("<=11", "12.2.3", False),
    ("<=11", "11.2.3", True),
    ("<=1.1", "1.2.3", False),
    ("<=1.1", "0.1.0", True),
    ("<=1.1", "1.1.0", True),
    ("<=1.1", "1.1.1", True),
    (">1.1", "4.1.0", True),
    (">1.1", "1.1.0", False),
    (">0", "0", False),
    (">0", "1", True),
    (">0", "0.0.1-alpha", False),
    (">0.0", "0.0.1-alpha", False),
    (">0-0", "0.0.1-alpha", False),
    (">0.0-0", "0.0.1-alpha", False),
    (">0", "0.0.0-alpha", False),
    (">0-0", "0.0.0-alpha", False),
    (">0.0.0-0", "0.0.0-alpha", True),
    (">1.2.3-alpha.1", "1.2.3-alpha.2", True),
    (">1.2.3-alpha.1", "1.3.3-alpha.2", True),
    (">11", "11.1.0", False),
    (">11.1", "11.1.0", False),
    (">11.1", "11.1.1", False),
    (">11.1", "11.2.1", True),
    (">=11", "11.1.2", True),
    (">=11.1", "11.1.2", True),
    (">=11.1", "11.0.2", False),
    (">=1.1", "4.1.0", True),
    (">=1.1", "1.1.0", True),
    (">=1.1", "0.0.9", False),
    (">=0", "0.0.1-alpha", False),
    (">=0.0", "0.0.1-alpha", False),
    (">=0-0", "0.0.1-alpha", True),
    (">=0.0-0", "0.0.1-alpha", True),
    (">=0", "0.0.0-alpha", False),
    (">=0-0", "0.0.0-alpha", True),
    (">=0.0.0-0", "0.0.0-alpha", True),
    (">=0.0.0-0", "1.2.3", True),
    (">=0.0.0-0", "3.4.5-beta.1", True),
    ("<0", "0.0.0-alpha", False),
    ("<0-z", "0.0.0-alpha", True),
    (">=0", "0", True),
    ("=0", "1", False),
    ("*", "1", True),
    ("*", "4.5.6", True),
    ("*", "1.2.3-alpha.1", False),
    ("*-0", "1.2.3-alpha.1", True),
    ("2.*", "1", False),
    ("2.*", "3.4.5", False),
    ("2.*", "2.1.1", True),
    ("2.1.*", "2.1.1", True),
    ("2.1.*", "2.2.1", False),
    ("2", "1", False),
    ("2", "3.4.5", False),
    ("2", "2.1.1", True),
    ("2.1", "2.1.1", True),
    ("2.1", "2.2.1", False),
    ("~1.2.3", "1.2.4", True),
    ("~1.2.3", "1.3.4", False),
    ("~1.2", "1.2.4", True),
    ("~1.2", "1.3.4", False),
    ("~1", "1.2.4", True),
    ("~1", "2.3.4", False),
    ("~0.2.3", "0.2.5", True),
    ("~0.2.3", "0.3.5", False),
    ("~1.2.3-beta.2", "1.2.3-beta.4", True),
    # Unlike npm, a prerelease in the constraint admits prereleases of any
    # version in range, not only of the same major.minor.patch.
    ("~1.2.3-beta.2", "1.2.4-beta.2", True),
    ("~1.2.3-beta.2", "1.3.4-beta.2", False),
    ("^1.2.3", "1.8.9", True),
    ("^1.2.3", "2.8.9", False),
    ("^1.2.3", "1.2.1", False),
    ("^1.1.0", "2.1.0", False),
    ("^1.2.0", "2.2.1", False),
    ("^1.2.0", "1.2.1-alpha.1", False),
    ("^1.2.0-alpha.0", "1.2.1-alpha.1", True),
    ("^1.2.0-alpha.0", "1.2.1-alpha.0", True),
    ("^1.2.0-alpha.2", "1.2.0-alpha.1", False),
    ("^1.2", "1.8.9", True),
    ("^1.2", "2.8.9", False),
    ("^1", "1.8.9", True),
    ("^1", "2.8.9", False),
    ("^0.2.3", "0.2.5", True),
    ("^0.2.3", "0.5.6", False),
    ("^0.2", "0.2.5", True),
    ("^0.2", "0.5.6", False),
    ("^0.0.3", "0.0.3", True),
    ("^0.0.3", "0.0.4", False),
    ("^0.0", "0.0.3", True),
    ("^0.0", "0.1.4", False),
    ("^0.0", "1.0.4", False),
    ("^0", "0.2.3", True),
    ("^0", "1.1.4", False),
    ("^0.2.3-beta.2", "0.2.3-beta.4", True),
    ("^0.2.3-beta.2", "0.2.4-beta.2", True),
    ("^0.2.3-beta.2", "0.3.4-beta.2", False),
    ("^0.2.3-beta.2", "0.2.3-beta.2", True),
]

# constraints_test.go TestConstraintsCheck (whole constraints).
CONSTRAINT_CHECKS: list[tuple[str, str, bool]] = [
    ("*", "1.2.3", True),
    ("~0.0.0", "1.2.3", True),
    ("0.x.x", "1.2.3", False),
    ("0.0.x", "1.2.3", False),
    ("0.0.0", "1.2.3", False),
    ("^0.0.0", "1.2.3", False),
    ("= 2.0", "1.2.3", False),
    ("= 2.0", "2.0.0", True),
    ("4.1", "4.1.0", True),
    ("4.1.x", "4.1.3", True),
    ("1.x", "1.4", True),
    ("!=4.1", "4.1.0", False),
    ("!=4.1-alpha", "4.1.0-alpha", False),
    ("!=4.1-alpha", "4.1.1-alpha", False),
    ("!=4.1-alpha", "4.1.0", True),
    ("!=4.1", "5.1.0", True),
    ("!=4.x", "5.1.0", True),
    ("!=4.x", "4.1.0", False),
    ("!=4.1.x", "4.2.0", True),
    ("!=4.2.x", "4.2.3", False),
    (">1.1", "4.1.0", True),
    (">1.1", "1.1.0", False),
    ("<1.1", "0.1.0", True),
    ("<1.1", "1.1.0", False),
    ("<1.1", "1.1.1", False),
    ("<1.x", "1.1.1", False),
    ("<1.x", "0.1.1", True),
    ("<1.x", "2.0.0", False),
    ("<1.1.x", "1.2.1", False),
    ("<1.1.x", "1.1.500", False),
    ("<1.1.x", "1.0.500", True),
    ("<1.2.x", "1.1.1", True),
    (">=1.1", "4.1.0", True),
    (">=1.1", "4.1.0-beta", False),
    (">=1.1", "1.1.0", True),
    (">=1.1", "0.0.9", False),
    ("<=1.1", "0.1.0", True),
    ("<=1.1", "0.1.0-alpha", False),
    ("<=1.1-a", "0.1.0-alpha", True),
    ("<=1.1", "1.1.0", True),
    ("<=1.x", "1.1.0", True),
    ("<=2.x", "3.0.0", False),
    ("<=1.1", "1.1.1", True),
    ("<=1.1.x", "1.2.500", False),
    ("<=4.5", "3.4.0", True),
    ("<=4.5", "3.7.0", True),
    ("<=4.5", "4.6.3", False),
    (">1.1, <2", "1.1.1", False),
    (">1.1, <2", "1.2.1", True),
    (">1.1, <3", "4.3.2", False),
    (">=1.1, <2, !=1.2.3", "1.2.3", False),
    (">1.1 <2", "1.1.1", False),
    (">1.1 <2", "1.2.1", True),
    (">1.1    <3", "4.3.2", False),
    (">=1.1    <2    !=1.2.3", "1.2.3", False),
    (">=1.1, <2, !=1.2.3 || > 3", "4.1.2", True),
    (">=1.1, <2, !=1.2.3 || > 3", "3.1.2", False),
    (">=1.1, <2, !=1.2.3 || >= 3", "3.0.0", True),
    (">=1.1, <2, !=1.2.3 || > 3", "3.0.0", False),
    (">=1.1, <2, !=1.2.3 || > 3", "1.2.3", False),
    (">=1.1 <2 !=1.2.3", "1.2.3", False),
    (">=1.1 <2 !=1.2.3 || > 3", "4.1.2", True),
    (">=1.1 <2 !=1.2.3 || > 3", "3.1.2", False),
    (">=1.1 <2 !=1.2.3 || >= 3", "3.0.0", True),
    (">=1.1 <2 !=1.2.3 || > 3", "3.0.0", False),
    (">=1.1 <2 !=1.2.3 || > 3", "1.2.3", False),
    ("> 1.1, <     2", "1.1.1", False),
    (">   1.1, <2", "1.2.1", True),
    (">1.1, <  3", "4.3.2", False),
    (">= 1.1, <     2, !=1.2.3", "1.2.3", False),
    ("> 1.1 < 2", "1.1.1", False),
    (">1.1 < 2", "1.2.1", True),
    ("> 1.1    <3", "4.3.2", False),
    (">=1.1    < 2    != 1.2.3", "1.2.3", False),
    (">= 1.1, <2, !=1.2.3 || > 3", "4.1.2", True),
    (">= 1.1, <2, != 1.2.3 || > 3", "3.1.2", False),
    (">= 1.1, <2, != 1.2.3 || >= 3", "3.0.0", True),
    (">= 1.1, <2, !=1.2.3 || > 3", "3.0.0", False),
    (">= 1.1, <2, !=1.2.3 || > 3", "1.2.3", False),
    (">= 1.1 <2 != 1.2.3", "1.2.3", False),
    (">= 1.1 <2 != 1.2.3 || > 3", "4.1.2", True),
    (">= 1.1 <2 != 1.2.3 || > 3", "3.1.2", False),
    (">= 1.1 <2 != 1.2.3 || >= 3", "3.0.0", True),
    (">= 1.1 < 2 !=1.2.3 || > 3", "3.0.0", False),
    (">=1.1 < 2 !=1.2.3 || > 3", "1.2.3", False),
    (">= 1.0.0  <= 2.0.0-beta", "1.0.1-beta", True),
    (">= 1.0.0  <= 2.0.0-beta", "1.0.1", True),
    (">= 1.0.0  <= 2.0.0-beta", "3.0.0", False),
    (">= 1.0.0  <= 2.0.0-beta || > 3", "1.0.1-beta", True),
    (">= 1.0.0  <= 2.0.0-beta || > 3", "3.0.1-beta", False),
    (">= 1.0.0  <= 2.0.0-beta != 1.0.1 || > 3", "1.0.1-beta", True),
    (">= 1.0.0  <= 2.0.0-beta != 1.0.1-beta || > 3", "1.0.1-beta", False),
    (">= 1.0.0-0  <= 2.0.0", "1.0.1-beta", True),
    ("1.1 - 2", "1.1.1", True),
    ("1.5.0 - 4.5", "3.7.0", True),
    ("1.1-3", "4.3.2", False),
    ("^1.1", "1.1.1", True),
    ("^1.1", "4.3.2", False),
    ("^1.x", "1.1.1", True),
    ("^2.x", "1.1.1", False),
    ("^1.x", "2.1.1", False),
    ("^1.x", "1.1.1-beta1", False),
    ("^1.1.2-alpha", "1.2.1-beta1", True),
    ("^1.2.x-alpha", "1.1.1-beta1", False),
    ("^0.0.1", "0.0.1", True),
    ("^0.0.1", "0.3.1", False),
    ("~*", "2.1.1", True),
    ("~1", "2.1.1", False),
    ("~1", "1.3.5", True),
    ("~1", "1.4", True),
    ("~1.x", "2.1.1", False),
    ("~1.x", "1.3.5", True),
    ("~1.x", "1.4", True),
    ("~1.1", "1.1.1", True),
    ("~1.1", "1.1.1-alpha", False),
    ("~1.1-alpha", "1.1.1-beta", True),
    ("~1.1.1-beta", "1.1.1-alpha", False),
    ("~1.1.1-beta", "1.1.1", True),
    ("~1.2.3", "1.2.5", True),
    ("~1.2.3", "1.2.2", False),
    ("~1.2.3", "1.3.2", False),
    ("~1.1", "1.2.3", False),
    ("~1.3", "2.4.5", False),
    ("1.0.0 - 2.0.0 <=2.0.0", "1.5.0", True),
    ("1.0.0 - 2.0.0, <=2.0.0", "1.5.0", True),
]

# constraints_test.go TestConstraintsValidate: the rows its Check-tables do
# not already have, then (all false) the pairs of its failure-message table.
VALIDATE_CHECKS: list[tuple[str, str, bool]] = [
    ("<2.x", "1.1.1", True),
    ("<=2.x", "3.1.0", False),
    ("^1.1", "1.1.1-alpha", False),
    ("^1.1.1-alpha", "1.1.1-beta", True),
    ("^1.1.1-beta", "1.1.1-alpha", False),
    ("^0.0.1", "0.1.3", False),
    ("~1", "1.3.5-beta", False),
    ("~1.x", "1.3.5-beta", False),
    ("~1.3.6-alpha", "1.3.5-beta", False),
    ("~1.3.5-alpha", "1.3.5-beta", True),
    ("~1.3.5-beta", "1.3.5-alpha", False),
    ("!= 1.2.5, ^2, <= 1.1.x", "1.2.3", False),
    ("2.x", "1.2.3", False),
    ("2", "1.2.3", False),
    ("<1.x", "2.1.1", False),
    ("<=1.1", "1.2.1", False),
    ("1.1 - 3", "4.3.2", False),
    ("^1.12.7", "1.6.6", False),
    ("^0.2", "0.3.0", False),
    ("^0.2", "0.1.1", False),
    ("^0.0.3", "0.1.1", False),
    ("^0.0.3", "0.0.2", False),
    ("~1", "2.1.2", False),
    ("> 1.2.3", "1.2.3-beta.1", False),
]

# Behaviour the upstream tests leave implicit, each row checked against
# Masterminds itself in a Go harness.
QUIRK_CHECKS: list[tuple[str, str, bool]] = [
    # "^*" is documented as "any" but is ^0.0.0: only 0.0.0 itself.
    ("^*", "0.0.0", True),
    ("^*", "0.0.1", False),
    ("^*", "1.2.3", False),
    # "<=*" ignores the patch: 0.0.x.
    ("<=*", "0.0.5", True),
    ("<=*", "0.1.0", False),
    # "!=*" and ">*" compare with 0.0.0; "<*" matches nothing.
    ("!=*", "0.0.0", False),
    ("!=*", "0.0.1", True),
    (">*", "0.0.0", False),
    (">*", "0.0.1", True),
    ("<*", "0.0.0", False),
    ("*", "0.0.0", True),
    ("x", "1.2.3", True),
    ("X", "1.2.3", True),
    ("=*", "9.9.9", True),
    # A wildcard drops the fields after it, even numbers (and "|").
    ("1.x.7", "1.0.0", True),
    ("1.x.7", "2.0.0", False),
    ("1.x.|", "1.5.0", True),
    # Leading zeros, "v" prefixes and build metadata in constraints.
    (">=01.02", "1.2.0", True),
    (">=01.02", "1.1.9", False),
    ("v1.2.3", "1.2.3", True),
    ("v1.2.3", "1.2.4", False),
    ("=v1.2", "1.2.9", True),
    ("=v1.2", "1.3.0", False),
    ("1.2.3+build", "1.2.3+other", True),
    # The prerelease opt-in is per || group, and admits any prerelease in
    # range.
    (">=1.2.3-alpha", "2.0.0-beta", True),
    (">=1.2.3-alpha", "3.0.0", True),
    (">=1.2.3-alpha || <1", "0.5.0-rc.1", False),
    (">=1.2.3-alpha, <2 || >3", "1.5.0-rc.1", True),
    (">=1.2.3-alpha, <2 || >3", "3.5.0-rc.1", False),
    ("~0.0.0-0", "5.0.0-beta", True),
    # "!=" with wildcards.
    ("!=4.x-beta", "4.5.0", False),
    ("!=4.x-beta", "5.0.0", True),
    ("!=4.1.x-beta", "4.1.3-beta", False),
    ("!=4.1.x-beta", "4.1.0-alpha", True),
    ("!=4.1.x-beta", "4.1.0", True),
    (">1.x", "1.9.9", False),
    (">1.x", "2.0.0", True),
    # Tilde and caret, as SPEC'd.
    ("^0.2.3", "0.2.9", True),
    ("^0.2.3", "0.3.0", False),
    ("^0.2.3", "0.2.2", False),
    ("^0.0.3", "0.0.3", True),
    ("^0.0.3", "0.0.4", False),
    ("~1", "0.9.9", False),
    ("~1.2", "1.2.0", True),
    ("~1.2", "1.3.0", False),
    ("~1.2.x", "1.2.5", True),
    ("~1.2.x", "1.3.0", False),
    ("~>1.2.3", "1.2.9", True),
    ("~>1.2.3", "1.3.0", False),
    ("^1.x", "1.0.0", True),
    ("^1.x", "2.0.0", False),
    ("=>1.2, =<1.4", "1.4.9", True),
    ("=>1.2, =<1.4", "1.5.0", False),
    # Hyphen ranges, with partial and x bounds and "v" prefixes.
    ("1.2 - 1.4.5", "1.4.5", True),
    ("1.2 - 1.4.5", "1.4.6", False),
    ("1.2 - 1.4.5", "1.1.9", False),
    ("1.2.x - 1.4.x", "1.4.9", True),
    ("1.2.x - 1.4.x", "1.5.0", False),
    ("v1.0 - v2", "2.9.9", True),
    ("v1.0 - v2", "3.0.0", False),
    # Whitespace: Go's \s is tab, newline, form feed, carriage return and
    # space.
    ("\t>=1.2\t<2\n", "1.5.0", True),
    (">=1.2\r<2", "2.0.0", False),
    (">= 1.2 ,  < 2", "2.0.0", False),
    (">=1 <2 || >=3 <4 || =5", "2.5.0", False),
    (">=1 <2 || >=3 <4 || =5", "3.5.0", True),
    (">=1 <2 || >=3 <4 || =5", "5.0.1", True),
    ("18446744073709551615", "18446744073709551615.0.0", True),
]

# constraints_test.go TestNewConstraint: (text, number of ORs, comparators in
# the first OR); TestParseConstraint's valid rows; and more checked against
# the Go harness.
VALID_CONSTRAINTS: list[tuple[str, int, int]] = [
    (">= 1.1", 1, 1),
    (">40.50.60, < 50.70", 1, 2),
    ("2.0", 1, 1),
    ("v2.3.5-20161202202307-sha.e8fc5e5", 1, 1),
    ("v1.2.3-0abc", 1, 1),
    (">= 1.2.3 < 2.0", 1, 2),
    (">= 1.2.3 < 2.0 || => 3.0 < 4", 2, 2),
    (">= 1.2.3, < 2.0", 1, 2),
    (">= 1.2.3, < 2.0 || => 3.0, < 4", 2, 2),
    ("3 - 4 || => 3.0, < 4", 2, 2),
    ("12.3.34 ~1.2.3", 1, 2),
    ("1.0.0 - 2.0.0, <=2.0.0", 1, 3),
    (">= 1.2", 1, 1),
    ("1.0", 1, 1),
    ("<= 1.2", 1, 1),
    ("=< 1.2", 1, 1),
    ("=> 1.2", 1, 1),
    ("v1.2", 1, 1),
    ("=1.5", 1, 1),
    ("> 1.3", 1, 1),
    ("< 1.4.1", 1, 1),
    ("< 40.50.10", 1, 1),
    ("1.1-3", 1, 1),
    ("*-0", 1, 1),
    ("x.|.|", 1, 1),
    ("1 , 2", 1, 2),
    ("1,2", 1, 2),
    ("\f1\f", 1, 1),
    ("1.2.3\n", 1, 1),
    ("~> 1.2 || ^ 2", 2, 1),
]

# constraints_test.go TestNewConstraint's and TestParseConstraint's errors,
# then more checked against the Go harness.
INVALID_CONSTRAINTS: list[str] = [
    "foo",
    "v1.2.3-beta.01",
    ">= bar",
    "BAR >= 1.2.3",
    "12.3.4.1234",
    "12.23.4.1234",
    "12.3.34.1234",
    "12.3.34~ 1.2.3",
    "",
    " ",
    "||",
    "1 ||",
    "|| 1",
    "1 ||| 2",
    "1 | 2",
    ">>1",
    "=>>1",
    "=<>1",
    "~ >1",
    "1.2.3.4",
    "18446744073709551616",
    "1.|",
    "V1.2",
    ">=1.2\v<2",  # \v is not whitespace in Go regexps
    ">=1.2\u00a0",
    ">=1,,<2",
    ">=1 , , <2",
    "1.2.3-",
    "1.2.3+",
    "1.x-01",
    ">=1.2 - 3",
    "\u0661.2.3",
    "1.2.3 -",
    "- 1.2.3",
]

# constraints_test.go TestConstraintString, TestTextMarshalConstraints and
# TestTextUnmarshalConstraints: text -> Masterminds' String().
STRING_FORMS: list[tuple[str, str]] = [
    ("*", "*"),
    (">=1.2.3", ">=1.2.3"),
    (">= 1.2.3", ">=1.2.3"),
    ("2.x,   >=1.2.3 || >4.5.6, < 5.7", "2.x >=1.2.3 || >4.5.6 <5.7"),
    ("2.x,   >=1.2.3 || >4.5.6, < 5.7 || >40.50.60, < 50.70",
     "2.x >=1.2.3 || >4.5.6 <5.7 || >40.50.60 <50.70"),
    ("1.2", "1.2"),
    ("1.2.3", "1.2.3"),
    ("<=1.2.3", "<=1.2.3"),
    ("1 <=1.2.3", "1 <=1.2.3"),
    ("1, <=1.2.3", "1 <=1.2.3"),
    (">1, <=1.2.3", ">1 <=1.2.3"),
    ("> 1 , <=1.2.3", ">1 <=1.2.3"),
    (">1 <=1.2.3", ">1 <=1.2.3"),
    ("> 1 <=1.2.3", ">1 <=1.2.3"),
]

# constraints_test.go TestRewriteRange, then cases where Go's
# strings.Replace(o, match, repl, 1) rewrites an earlier occurrence than the
# one found (checked against the Go harness).
REWRITES: list[tuple[str, str]] = [
    ("2 - 3", ">= 2, <= 3 "),
    ("2 - 3, 2 - 3", ">= 2, <= 3 ,>= 2, <= 3 "),
    ("2 - 3, 4.0.0 - 5.1", ">= 2, <= 3 ,>= 4.0.0, <= 5.1 "),
    ("2 - 3 4.0.0 - 5.1", ">= 2, <= 3 >= 4.0.0, <= 5.1 "),
    ("1.0.0 - 2.0.0 <=2.0.0", ">= 1.0.0, <= 2.0.0 <=2.0.0"),
    ("21 - 21 - 21 - 2", ">= 21, <=>= 21, <= 2 1 - 2"),
    (" 12 - 211 - 2>=1 - 2", ">= 12, <= 21>= 1, <= 2 >=1 - 2"),
    ("no ranges", "no ranges"),
]


def _shape(constraint: Constraint) -> list[int]:
    """
    The number of comparators in each OR group, read off Masterminds'
    String() form (comparators never contain spaces).
    """
    return [len(group.split(" ")) for group in str(constraint).split(" || ")]


def _fields(version: Version) -> tuple[int, int, int, str, str]:
    return (
        version.major,
        version.minor,
        version.patch,
        version.prerelease,
        version.metadata,
    )


class VersionParsingTests(SynchronousTestCase):
    """
    ``parse_version`` and ``parse_strict_version``.
    """

    def _accepts(self, parse: Callable[[str], Version], text: str) -> bool:
        try:
            parse(text)
        except InvalidVersion:
            return False
        return True

    def test_lenient(self) -> None:
        """
        ``parse_version`` accepts and rejects what Masterminds' NewVersion
        does.
        """
        wrong = [
            (text, valid)
            for text, valid in LENIENT_VERSIONS
            if self._accepts(parse_version, text) != valid
        ]
        self.assertEqual(wrong, [])

    def test_strict(self) -> None:
        """
        ``parse_strict_version`` accepts and rejects what Masterminds'
        StrictNewVersion does.
        """
        wrong = [
            (text, valid)
            for text, valid in STRICT_VERSIONS
            if self._accepts(parse_strict_version, text) != valid
        ]
        self.assertEqual(wrong, [])

    def test_quirks(self) -> None:
        """
        Edge cases parse to the fields Masterminds gives, or fail alike.
        """
        wrong = []
        for text, lenient, strict in VERSION_QUIRKS:
            for parse, expected in (
                (parse_version, lenient),
                (parse_strict_version, strict),
            ):
                try:
                    got: _V | None = _fields(parse(text))
                except InvalidVersion:
                    got = None
                if got != expected:
                    wrong.append((parse.__name__, text, got, expected))
        self.assertEqual(wrong, [])

    def test_parts(self) -> None:
        """
        version_test.go TestParts: every field of a full version.
        """
        version = parse_version("1.2.3-beta.1+build.123")
        self.assertEqual(
            _fields(version), (1, 2, 3, "beta.1", "build.123")
        )
        self.assertEqual(version.original, "1.2.3-beta.1+build.123")

    def test_canonical_string(self) -> None:
        """
        version_test.go TestCoerceString and TestOriginal: ``str()`` is the
        coerced canonical form, ``original`` the text as given.
        """
        wrong = [
            (text, str(parse_version(text)), expected)
            for text, expected in COERCED_STRINGS
            if str(parse_version(text)) != expected
            or parse_version(text).original != text
        ]
        self.assertEqual(wrong, [])

    def test_new(self) -> None:
        """
        version_test.go TestNew: a version built from its fields prints, and
        remembers as original, its canonical form.
        """
        self.assertEqual(str(Version(0, 1, 2)), "0.1.2")
        version = Version(1, 2, 3, "alpha.1", "foo.bar")
        self.assertEqual(str(version), "1.2.3-alpha.1+foo.bar")
        self.assertEqual(version.original, "1.2.3-alpha.1+foo.bar")

    def test_errors_are_value_errors(self) -> None:
        """
        Both error types are ``ValueError``s, for callers that catch broadly.
        """
        self.assertRaises(ValueError, parse_version, "foo")
        self.assertRaises(ValueError, parse_constraint, "foo")


class ParseTagTests(SynchronousTestCase):
    """
    ``parse_tag``, Kargo's pkg/controller/semver Parse.
    """

    def test_lenient(self) -> None:
        """
        Without strictSemvers any NewVersion-valid tag is a version, and the
        result keeps the tag as its original.
        """
        for tag in ("v1.2.3", "1.2", "v1", "01.2.3", "1.2.3-rc.1+b"):
            version = parse_tag(tag, False)
            self.assertIsNotNone(version, tag)
            assert version is not None
            self.assertEqual(version.original, tag)
        for tag in ("release-1.2", "V1.2.3", "1.2.3.4", "latest", ""):
            self.assertIsNone(parse_tag(tag, False), tag)

    def test_strict(self) -> None:
        """
        With strictSemvers the tag less one "v" must also be a full
        semver: no partial versions, no leading zeros, no second "v".
        """
        for tag in ("v1.2.3", "1.2.3", "v1.2.3-rc.1+build.5", "0.0.0"):
            self.assertIsNotNone(parse_tag(tag, True), tag)
        for tag in ("v1.2", "1", "v01.2.3", "1.02.3", "vv1.2.3", "1.2.3-01"):
            self.assertIsNone(parse_tag(tag, True), tag)
        version = parse_tag("v1.2.3", True)
        assert version is not None
        self.assertEqual(version.original, "v1.2.3")


class ComparisonTests(SynchronousTestCase):
    """
    ``compare`` and the rich comparisons of ``Version``.
    """

    def test_table(self) -> None:
        """
        Precedence as Masterminds' Compare, in both directions and through
        every operator.
        """
        wrong = []
        for left_text, right_text, expected in COMPARISONS:
            left, right = parse_version(left_text), parse_version(right_text)
            got = (
                compare(left, right),
                -compare(right, left),
                (left > right) - (left < right),
                (left >= right) - (left <= right),
                int(left != right) * (1 if left > right else -1),
            )
            if got != (expected,) * 5:
                wrong.append((left_text, right_text, got, expected))
        self.assertEqual(wrong, [])

    def test_equal_hash(self) -> None:
        """
        Versions of equal precedence are equal and hash alike, whatever
        their spelling and metadata; Versions never equal other types.
        """
        versions = {parse_version(t) for t in ("1", "v1.0", "1.0.0+b")}
        self.assertEqual(len(versions), 1)
        self.assertNotEqual(parse_version("1.0.0"), "1.0.0")
        self.assertRaises(TypeError, lambda: parse_version("1") < "2")


class ConstraintTests(SynchronousTestCase):
    """
    ``parse_constraint`` and ``Constraint.check``.
    """

    def _check_table(self, table: list[tuple[str, str, bool]]) -> None:
        wrong = []
        for text, version, expected in table:
            got = parse_constraint(text).check(parse_version(version))
            if got != expected:
                wrong.append((text, version, expected))
        self.assertEqual(wrong, [])

    def test_single_comparators(self) -> None:
        """
        Every operator and wildcard form, one comparator at a time.
        """
        self._check_table(SINGLE_CHECKS)

    def test_constraints(self) -> None:
        """
        AND by comma or space, OR, hyphen ranges and prerelease groups.
        """
        self._check_table(CONSTRAINT_CHECKS)

    def test_validate_rows(self) -> None:
        """
        The verdicts of Masterminds' Validate tests, which Check shares.
        """
        self._check_table(VALIDATE_CHECKS)

    def test_quirks(self) -> None:
        """
        Masterminds' less obvious verdicts, kept on purpose.
        """
        self._check_table(QUIRK_CHECKS)

    def test_valid(self) -> None:
        """
        Valid constraints parse into the OR and AND groups Masterminds makes.
        """
        wrong = []
        for text, ors, first in VALID_CONSTRAINTS:
            shape = _shape(parse_constraint(text))
            if (len(shape), shape[0]) != (ors, first):
                wrong.append((text, shape))
        self.assertEqual(wrong, [])

    def test_invalid(self) -> None:
        """
        What Masterminds rejects raises ``InvalidConstraint``.
        """
        accepted = []
        for text in INVALID_CONSTRAINTS:
            try:
                parse_constraint(text)
            except InvalidConstraint:
                continue
            accepted.append(text)
        self.assertEqual(accepted, [])

    def test_string(self) -> None:
        """
        ``str()`` is Masterminds' String(), which parses back to the same
        form; ``text`` and ``repr()`` keep the constraint as written.
        """
        wrong = []
        for text, expected in STRING_FORMS:
            got = str(parse_constraint(text))
            if got != expected or str(parse_constraint(got)) != expected:
                wrong.append((text, got, expected))
        self.assertEqual(wrong, [])
        constraint = parse_constraint(">= 1.2,<2")
        self.assertEqual(constraint.text, ">= 1.2,<2")
        self.assertEqual(repr(constraint), "<Constraint '>= 1.2,<2'>")

    def test_rewrite_ranges(self) -> None:
        """
        Hyphen ranges are rewritten exactly as Masterminds' rewriteRange
        does, odd first-occurrence replacements included.
        """
        wrong = [
            (text, semver._rewrite_hyphen_ranges(text), expected)
            for text, expected in REWRITES
            if semver._rewrite_hyphen_ranges(text) != expected
        ]
        self.assertEqual(wrong, [])

    def test_long_inputs(self) -> None:
        """
        Inputs built to make a backtracking regex engine (or a naive range
        search) take quadratic time still parse in linear time.
        """
        n = 50_000
        hostile = [
            " " * n + "!",
            " " * n + "1",
            ">=1" + " " * n + "<2",
            "1" * n + " - 2",
            "1.2.3-" + "1" * n + " - 2",
            "1.2.3-" + "a." * n + "!",
            " -" * n,
            "1 , " * n + "!",
            "1 - 2 " * (n // 6),
            ">=1.2.3 " * (n // 8),
        ]
        start = time.monotonic()
        for text in hostile:
            try:
                parse_constraint(text)
            except InvalidConstraint:
                pass
        for text in ("1" * n + "!", "1.2.3-" + "a-" * n + "!", "v1." * n):
            self.assertIsNone(parse_tag(text, True))
        self.assertLess(time.monotonic() - start, 2.0)


# Hypothesis strategies: well-formed versions, canonical spelling.
_numbers = st.one_of(
    st.integers(0, 20), st.integers(0, 2**64 - 1)
)
_identifier = st.one_of(
    st.integers(0, 2**70).map(str),
    st.from_regex(r"[0-9A-Za-z-]*[A-Za-z-][0-9A-Za-z-]*", fullmatch=True),
)
_dotted = st.lists(_identifier, min_size=1, max_size=4).map(".".join)
_versions = st.builds(
    Version,
    _numbers,
    _numbers,
    _numbers,
    st.one_of(st.just(""), _dotted),
    st.one_of(
        st.just(""),
        st.lists(
            st.from_regex(r"[0-9A-Za-z-]+", fullmatch=True),
            min_size=1,
            max_size=3,
        ).map(".".join),
    ),
)
_small_releases = st.builds(
    Version, st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)
)


class PropertyTests(SynchronousTestCase):
    """
    Properties over generated versions.
    """

    @settings(max_examples=200, deadline=None)
    @given(_versions)
    def test_round_trip(self, version: Version) -> None:
        """
        The canonical string parses back, leniently and strictly, to the
        same fields.
        """
        for parse in (parse_version, parse_strict_version):
            again = parse(str(version))
            self.assertEqual(_fields(again), _fields(version))
            self.assertEqual(again.original, str(version))

    @settings(max_examples=200, deadline=None)
    @given(_versions, _versions, _versions)
    def test_total_order(self, a: Version, b: Version, c: Version) -> None:
        """
        Precedence is a total order: exactly one of <, ==, > holds,
        ``compare`` agrees and is antisymmetric, and it is transitive;
        equal versions hash alike.
        """
        self.assertEqual([a < b, a == b, a > b].count(True), 1)
        self.assertEqual(compare(a, b), (a > b) - (a < b))
        self.assertEqual(compare(a, b), -compare(b, a))
        if a == b:
            self.assertEqual(hash(a), hash(b))
        ordered = sorted([a, b, c], key=functools.cmp_to_key(compare))
        self.assertLessEqual(ordered[0], ordered[1])
        self.assertLessEqual(ordered[1], ordered[2])
        self.assertLessEqual(ordered[0], ordered[2])

    @settings(max_examples=200, deadline=None)
    @given(_small_releases, _small_releases)
    def test_full_version_operators(self, bound: Version, v: Version) -> None:
        """
        With full release versions the plain operators are plain
        precedence comparisons.
        """
        expectations = {
            "=": v == bound,
            "!=": v != bound,
            ">": v > bound,
            "<": v < bound,
            ">=": v >= bound,
            "<=": v <= bound,
        }
        for op, expected in expectations.items():
            self.assertEqual(
                parse_constraint(f"{op}{bound}").check(v), expected, op
            )
