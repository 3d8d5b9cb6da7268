"""Range parsing and conditional-request rules (pure functions, S3's documented behaviour)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from strata.protocol.errors import ServiceError
from strata.services.s3.conditions import check_read_conditions, parse_copy_range, parse_range
from strata.services.s3.store import prefix_end


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 10, None),
        ("bytes=0-0", 10, (0, 0)),
        ("bytes=2-", 10, (2, 9)),
        ("bytes=-3", 10, (7, 9)),
        ("bytes=-30", 10, (0, 9)),
        ("bytes=5-100", 10, (5, 9)),
        ("bytes=5-2", 10, None),  # invalid: whole object
        ("items=0-1", 10, None),
        ("bytes=0-1,3-4", 10, None),  # multiple ranges: whole object
    ],
)
def test_parse_range(header: str | None, size: int, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(
    ("header", "size"), [("bytes=10-", 10), ("bytes=-0", 10), ("bytes=0-", 0), ("bytes=-5", 0)]
)
def test_unsatisfiable_ranges(header: str, size: int) -> None:
    with pytest.raises(ServiceError) as e:
        parse_range(header, size)
    assert (e.value.code, e.value.status) == ("InvalidRange", 416)
    assert e.value.headers["Content-Range"] == f"bytes */{size}"


def test_copy_range_must_be_explicit_and_inside() -> None:
    assert parse_copy_range("bytes=0-9", 10) == (0, 9)
    for bad in ("bytes=0-", "bytes=-5", "0-9"):
        with pytest.raises(ServiceError):
            parse_copy_range(bad, 10)
    with pytest.raises(ServiceError) as e:
        parse_copy_range("bytes=5-10", 10)
    assert e.value.code == "InvalidRange"


NOW = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
BEFORE, AFTER = datetime(2025, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("kw", "outcome"),
    [
        ({"if_match": '"e"'}, None),
        ({"if_match": "*"}, None),
        ({"if_match": '"x"'}, 412),
        ({"if_match": '"e"', "if_unmodified_since": BEFORE}, None),  # If-Match wins
        ({"if_unmodified_since": BEFORE}, 412),
        ({"if_unmodified_since": AFTER}, None),
        ({"if_none_match": '"e"'}, 304),
        ({"if_none_match": '"x", "e"'}, 304),
        ({"if_none_match": '"x"', "if_modified_since": AFTER}, None),  # ETag decides
        ({"if_modified_since": AFTER}, 304),
        ({"if_modified_since": BEFORE}, None),
    ],
)
def test_read_conditions(kw: dict, outcome: int | None) -> None:
    args = {
        "if_match": None,
        "if_none_match": None,
        "if_modified_since": None,
        "if_unmodified_since": None,
        **kw,
    }
    if outcome is None:
        check_read_conditions('"e"', NOW, **args)
    else:
        with pytest.raises(ServiceError) as e:
            check_read_conditions('"e"', NOW, **args)
        assert e.value.status == outcome


def test_copy_source_conditions_fail_with_412() -> None:
    with pytest.raises(ServiceError) as e:
        check_read_conditions('"e"', NOW, None, '"e"', None, None, copy_source=True)
    assert e.value.status == 412


def test_prefix_end_bounds_every_key_with_the_prefix() -> None:
    assert prefix_end("") is None
    assert prefix_end("abc/") == "abc0"
    assert prefix_end("a\U0010ffff") == "b"
    for key in ("abc/", "abc/\U0010ffff", "abc/zzz"):
        assert "abc/" <= key < prefix_end("abc/")
        assert key.encode() < prefix_end("abc/").encode()
