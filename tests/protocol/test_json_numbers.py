"""JSON request bodies read with orjson keep exactly json's values: a number of 19+ digits (beyond
64 bits orjson would give a float) sends the body to json, wherever in the document it stands and
whatever whitespace or sign is around it; a long run of digits inside a string does not matter.
"""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from strata.protocol.codecs.json_rpc import load_json_object

BIG = st.one_of(
    st.integers(min_value=10**18, max_value=10**40),
    st.integers(min_value=-(10**40), max_value=-(10**18)),
    st.sampled_from([2**63, 2**64, -(2**63) - 1, 2**64 + 1, 10**38]),
)
TEXT = st.text(alphabet='0123456789abcdeE:-+., "\\', max_size=45)
SCALARS = st.one_of(BIG, st.integers(), TEXT, st.booleans(), st.none())
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=12,
)
LAYOUTS = st.sampled_from([{}, {"separators": (",", ":")}, {"indent": 1}, {"indent": "\t"}])


def rendered(value: object) -> str:
    return json.dumps(value, sort_keys=True)  # 2**64 and 1.8446744073709552e+19 differ here


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(TEXT, VALUES, max_size=5), LAYOUTS)
def test_values_are_json_s(doc: dict, layout: dict) -> None:
    body = json.dumps(doc, **layout).encode()
    assert rendered(load_json_object(body)) == rendered(json.loads(body))


def test_long_numbers_stay_integers() -> None:
    for body in (
        b'{"a":12345678901234567890123}',
        b'{"a": [1, -18446744073709551616]}',
        b'{"a":\n\t99999999999999999999}',
        b'{"s": "12345678901234567890123", "a": 12345678901234567890123}',
    ):
        assert rendered(load_json_object(body)) == rendered(json.loads(body)), body


def test_digits_in_strings_are_text() -> None:
    body = b'{"Item": {"n": {"N": "12345678901234567890123456789012345678"}, "id": {"S": "x-1234567890123456789012"}}}'
    assert load_json_object(body) == json.loads(body)
