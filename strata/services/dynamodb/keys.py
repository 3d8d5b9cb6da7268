"""Byte-comparable encoding of key attributes, so SQLite's memcmp order is DynamoDB's key order.

Strings encode as their UTF-8 bytes, binaries as themselves (SQLite compares BLOBs as unsigned
bytes, shorter prefix first), numbers as sign/exponent/digits such that bytes order numerically:

    zero      0x80
    positive  0x81, exponent+128 (1 byte), digits as bytes 1..10            (no terminator needed:
                                                                            a shorter mantissa is smaller)
    negative  0x7f, 127-exponent (1 byte), complemented digits 245..254, 0xff (terminator makes the
                                                                            shorter mantissa larger)

DynamoDB's smallest magnitudes (exponents -129 and -130) do not fit that exponent byte; they sort
between zero and the rest, so they get room there, keeping every other number's bytes as stored:

    tiny positive  0x80, exponent+130 (0 or 1), digits 1..10                 (after zero, before 0x81)
    tiny negative  0x7f 0xff 0xff, -exponent-129 (0 or 1), complemented digits, 0xff
                                                   (after every other negative: their third byte <= 0xfe)

A key attribute's type is fixed by the table's AttributeDefinitions, so values of different types
never meet in one column.
"""

from __future__ import annotations

from decimal import Decimal


def encode_number(text: str) -> bytes:
    d = Decimal(text)
    if not d:
        return b"\x80"
    sign, digits, exp = d.as_tuple()
    while digits and digits[-1] == 0:  # canonical numbers have none, but be exact anyway
        digits = digits[:-1]
        exp += 1
    adjusted = exp + len(digits) - 1
    if adjusted < -128:
        if sign == 0:
            return bytes((0x80, adjusted + 130, *(x + 1 for x in digits)))
        return bytes((0x7F, 0xFF, 0xFF, -adjusted - 129, *(254 - x for x in digits), 0xFF))
    if sign == 0:
        return bytes((0x81, adjusted + 128, *(x + 1 for x in digits)))
    return bytes((0x7F, 127 - adjusted, *(254 - x for x in digits), 0xFF))


def decode_number(data: bytes) -> str:
    """The canonical string of an encoded number (used to rebuild keys from index rows)."""
    from strata.services.dynamodb.types import format_number

    if data == b"\x80":
        return "0"
    if data[0] == 0x80:  # tiny positive
        adjusted = data[1] - 130
        digits = tuple(x - 1 for x in data[2:])
        return format_number(0, digits, adjusted - len(digits) + 1)
    if data[:3] == b"\x7f\xff\xff":  # tiny negative
        adjusted = -data[3] - 129
        digits = tuple(254 - x for x in data[4:-1])
        return format_number(1, digits, adjusted - len(digits) + 1)
    if data[0] == 0x81:
        adjusted = data[1] - 128
        digits = tuple(x - 1 for x in data[2:])
        return format_number(0, digits, adjusted - len(digits) + 1)
    adjusted = 127 - data[1]
    digits = tuple(254 - x for x in data[2:-1])
    return format_number(1, digits, adjusted - len(digits) + 1)


def encode(av: dict, key_type: str) -> bytes:
    """Encode a key attribute value already checked to be of `key_type` (S, N or B)."""
    v = av[key_type]
    if key_type == "S":
        return v.encode()
    if key_type == "N":
        return encode_number(v)
    return bytes(v)


def decode(data: bytes, key_type: str) -> dict:
    if key_type == "S":
        return {"S": data.decode()}
    if key_type == "N":
        return {"N": decode_number(data)}
    return {"B": data}


def prefix_successor(prefix: bytes) -> bytes | None:
    """The smallest byte string greater than every string starting with `prefix` (None: no bound)."""
    p = bytearray(prefix)
    while p and p[-1] == 0xFF:
        p.pop()
    if not p:
        return None
    p[-1] += 1
    return bytes(p)


# A multi-attribute GSI key (several partition- or sort-key attributes) is one byte string: each
# attribute's encoding with 0x00 escaped as 0x00 0xff, then the terminator 0x00 0x01. Tuples then
# compare as bytes in DynamoDB's order (first attribute, then the next...), since a terminator
# sorts below any continuation of a longer value, and a prefix of attributes is a byte prefix.
TERMINATOR = b"\x00\x01"
AFTER_TERMINATOR = b"\x00\x02"  # above every key whose attribute ends where a terminator would


def escape(data: bytes) -> bytes:
    return data.replace(b"\x00", b"\x00\xff")


def encode_part(av: dict, key_type: str) -> bytes:
    """One attribute of a multi-attribute key, terminated."""
    return escape(encode(av, key_type)) + TERMINATOR


def encode_parts(values: list[tuple[dict, str]]) -> bytes:
    return b"".join(encode_part(av, t) for av, t in values)
