"""The attribute-value model and the byte-comparable key encoding, without a server."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from strata.protocol.errors import ServiceError
from strata.services.dynamodb import keys
from strata.services.dynamodb.types import canonical_number, check_item, check_value, values_equal


@pytest.mark.parametrize(
    "text, canonical",
    [
        ("1.50", "1.5"),
        ("1e2", "100"),
        ("-0.000123e-2", "-0.00000123"),
        ("0.0", "0"),
        ("-0", "0"),
        ("12345678901234567890123456789012345678", "12345678901234567890123456789012345678"),
        ("9.9999999999999999999999999999999999999E+125", "99999999999999999999999999999999999999" + "0" * 88),
        ("1E-130", "0." + "0" * 129 + "1"),
    ],
)
def test_numbers_are_exact_and_canonical(text: str, canonical: str) -> None:
    assert canonical_number(text) == canonical
    assert Decimal(canonical) == Decimal(text)


@pytest.mark.parametrize(
    "text, message",
    [
        ("abc", "The parameter cannot be converted to a numeric value: abc"),
        ("1" * 39, "Attempting to store more than 38 significant digits in a Number"),
        (
            "1E+126",
            "Number overflow. Attempting to store a number with magnitude larger than supported range",
        ),
        (
            "1E-131",
            "Number underflow. Attempting to store a number with magnitude smaller than supported range",
        ),
        ("NaN", "The parameter cannot be converted to a numeric value: NaN"),
        ("1_000", "The parameter cannot be converted to a numeric value: 1_000"),
    ],
)
def test_bad_numbers(text: str, message: str) -> None:
    with pytest.raises(ServiceError) as e:
        canonical_number(text)
    assert e.value.code == "ValidationException" and e.value.message == message


def test_sets_reject_duplicates_and_empty() -> None:
    with pytest.raises(ServiceError, match="contains duplicates"):
        check_value({"SS": ["a", "a"]})
    with pytest.raises(ServiceError, match="contains duplicates"):
        check_value({"NS": ["1", "1.0"]})  # equal numbers are duplicates
    with pytest.raises(ServiceError, match="may not be empty"):
        check_value({"BS": []})
    assert values_equal({"SS": ["a", "b"]}, {"SS": ["b", "a"]})
    assert values_equal({"N": "1.0"}, {"N": "1"})


def test_empty_strings_allowed_outside_keys_and_nesting_limit() -> None:
    item, _ = check_item({"s": {"S": ""}, "b": {"B": b""}})
    assert item["s"] == {"S": ""}
    deep: dict = {"S": "x"}
    for _ in range(32):
        deep = {"L": [deep]}
    check_value(deep)  # 32 levels are allowed
    deep = {"M": {"x": deep}}
    with pytest.raises(ServiceError, match="Nesting Levels have exceeded supported limits"):
        check_value(deep)


def test_item_size_rules() -> None:
    # name bytes + value bytes: strings by UTF-8 length, numbers ~1 byte per 2 digits + 1,
    # maps/lists 3 bytes + 1 per element, BOOL/NULL 1 byte.
    assert check_item({"ab": {"S": "héllo"}})[1] == 2 + 6
    assert check_item({"n": {"N": "123"}})[1] == 1 + 3
    assert check_item({"m": {"M": {"k": {"BOOL": True}}}})[1] == 1 + 3 + (1 + 1 + 1)
    assert check_item({"l": {"L": [{"NULL": True}, {"S": "ab"}]}})[1] == 1 + 3 + (1 + 1) + (2 + 1)
    big = {"k": {"S": "x" * (400 * 1024 - 1)}}
    assert check_item(big)[1] == 400 * 1024
    with pytest.raises(ServiceError, match="Item size has exceeded the maximum allowed size"):
        check_item({"k": {"S": "x" * (400 * 1024)}})


@given(
    st.lists(
        st.integers(-(10**40), 10**40)
        | st.builds(
            lambda m, e: Decimal(m).scaleb(e), st.integers(-(10**20), 10**20), st.integers(-100, 100)
        ),
        min_size=2,
        max_size=30,
    )
)
def test_number_keys_sort_numerically(values: list) -> None:
    canon = []
    for v in values:
        try:
            canon.append(canonical_number(str(v)))
        except ServiceError:
            continue
    assert sorted(canon, key=Decimal) == sorted(canon, key=keys.encode_number)
    for c in canon:
        assert keys.decode_number(keys.encode_number(c)) == c


@given(st.lists(st.text(min_size=1), min_size=2, max_size=20))
def test_string_keys_sort_by_utf8_bytes(values: list[str]) -> None:
    values = [v for v in values if "\ud800" > v or v > "\udfff"]
    encoded = sorted(keys.encode({"S": v}, "S") for v in values)
    assert encoded == sorted(v.encode("utf-8", "surrogatepass") for v in values)


def test_binary_keys_are_unsigned_and_prefixes() -> None:
    assert keys.encode({"B": b"\xff"}, "B") > keys.encode({"B": b"\x01"}, "B")
    assert keys.prefix_successor(b"ab") == b"ac"
    assert keys.prefix_successor(b"a\xff") == b"b"
    assert keys.prefix_successor(b"\xff\xff") is None
