"""Which exports an NFSv4 COMPOUND works on (strata.engines.nfs4_compound): the credential proxy
stamps an access point's identity from this answer, so a call that could reach two access points
must be seen to do so. Calls are built here in XDR as a client would send them."""

from __future__ import annotations

import struct

from strata.engines.nfs4_compound import exports_touched

ROOT = 1
JUNCTIONS = {b"fsap-a": 5, b"fsap-b": 6}


def u32(*values: int) -> bytes:
    return struct.pack(f">{len(values)}I", *values)


def opaque(data: bytes) -> bytes:
    return u32(len(data)) + data + b"\0" * (-len(data) % 4)


def handle(export: int) -> bytes:
    """A ganesha 4 handle: version, flags, export id (network order), FSAL handle."""
    return bytes([0x43, 0]) + export.to_bytes(2, "big") + bytes([8]) + b"\x11" * 8


def compound(*ops: bytes) -> bytes:
    return opaque(b"tag") + u32(1, len(ops)) + b"".join(ops)


SEQUENCE = u32(53) + b"s" * 16 + u32(1, 0, 0, 0)
PUTROOTFH, LOOKUPP, SAVEFH, RESTOREFH, GETFH = u32(24), u32(16), u32(32), u32(31), u32(10)


def putfh(export: int) -> bytes:
    return u32(22) + opaque(handle(export))


def lookup(name: bytes) -> bytes:
    return u32(15) + opaque(name)


def write(data: bytes) -> bytes:
    return u32(38) + b"t" * 16 + struct.pack(">QI", 0, 0) + opaque(data)


def getattr_() -> bytes:
    return u32(9) + u32(2, 0x10, 0x20)


def touched(call: bytes) -> set[int] | None:
    return exports_touched(call, 0, ROOT, JUNCTIONS)


def test_filehandles_and_junctions() -> None:
    # A WRITE's data is skipped, whatever its length; the operations after it are still read.
    assert touched(compound(SEQUENCE, putfh(5), write(b"x" * 1001), getattr_())) == {5}
    # Mounting: the pseudo root, then the access point's junction.
    assert touched(compound(SEQUENCE, PUTROOTFH, lookup(b"fsap-b"), GETFH)) == {ROOT, 6}
    assert touched(compound(PUTROOTFH, lookup(b"other"))) == {ROOT}
    # A name like a junction inside an access point is an ordinary directory there.
    assert touched(compound(putfh(5), lookup(b"fsap-b"))) == {5}
    # No filehandle at all (EXCHANGE_ID, a bare SEQUENCE).
    assert touched(compound(SEQUENCE)) == set()


def test_every_way_out_of_an_access_point_is_seen() -> None:
    # LOOKUPP (or "..") from an access point's root reaches the pseudo root, and from there
    # another access point: the call may work on both.
    assert touched(compound(putfh(5), LOOKUPP, lookup(b"fsap-b"), GETFH)) == {5, ROOT, 6}
    assert touched(compound(putfh(5), lookup(b".."), lookup(b"fsap-b"))) == {5, ROOT, 6}
    # Saved and restored filehandles (RENAME and LINK work on both).
    assert touched(compound(putfh(5), SAVEFH, putfh(6), RESTOREFH, GETFH)) == {5, 6}


def test_unreadable_calls() -> None:
    assert touched(compound(putfh(5), u32(9999))) is None  # an unknown operation
    assert touched(compound(putfh(5), write(b"x" * 100))[:-8]) is None  # cut short
    assert touched(opaque(b"tag") + u32(1, 100_000)) is None  # absurd operation count


def test_where_each_putfh_handle_is() -> None:
    # The credential proxy checks every PUTFH's handle in place (strata.engines.nfs_subtree).
    call = compound(SEQUENCE, putfh(5), write(b"x" * 7), SAVEFH, putfh(6), RESTOREFH)
    handles: list[int] = []
    assert exports_touched(call, 0, ROOT, JUNCTIONS, handles) == {5, 6}
    assert [call[at + 4 : at + 4 + 13] for at in handles] == [handle(5), handle(6)]


def test_where_a_write_s_data_is_even_in_the_start_of_a_call() -> None:
    # The proxy reads a large call's first bytes, then moves the WRITE's data without reading it.
    call = compound(SEQUENCE, putfh(5), write(b"x" * 5000), getattr_())
    writes: list[int] = []
    assert exports_touched(call[:200], 0, ROOT, JUNCTIONS, writes=writes) is None  # cut short
    assert (
        call[writes[0] : writes[0] + 4] == u32(5000) and call[writes[0] + 4 : writes[0] + 5004] == b"x" * 5000
    )
