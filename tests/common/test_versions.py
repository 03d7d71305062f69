"""The one rule for which connector version is newer."""

from __future__ import annotations

import pytest

from common.versions import newer


@pytest.mark.parametrize(
    ("candidate", "than", "expected"),
    [
        ("1.2.0", "1.1.9", True),
        ("1.10.0", "1.9.0", True),  # numerically, not as text
        ("1.0.0", "1.0.0-rc.1", True),  # a release is after its pre-releases
        ("1.0.0", "1.0.0", False),
        ("1.0.0", "2.0.0", False),
        ("1.0.0", None, True),  # an install made before versions were kept
        ("1.0.0", "", True),
        ("1.0.0", "v1", True),  # not semantic: any semantic version replaces it
        ("latest", "1.0.0", False),  # a candidate that is not semantic replaces nothing
        (None, "1.0.0", False),
    ],
)
def test_newer(candidate, than, expected):
    assert newer(candidate, than) is expected
