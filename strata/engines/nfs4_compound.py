"""Which NFS exports an NFSv4 COMPOUND call works on, read from its arguments (RFC 7530, 8881, 7862, 8276).

The credential proxy (strata.engines.nfs_cred_proxy) must give each call the identity of the one
access point it works on, so it follows the call's current and saved filehandles through its
operations the way ganesha does:

- PUTFH names the export in ganesha's handle (`export_of_handle`); PUTROOTFH and PUTPUBFH name the
  pseudo root's export.
- LOOKUP (and OPEN by name) of an access point's junction from the pseudo root crosses into that
  access point's export; LOOKUPP (or a lookup of "..") may step back out to the pseudo root, so
  after it the current export is "this one or the pseudo root".
- SAVEFH/RESTOREFH move the current export to and from the saved one.

`exports_touched` answers the set of every export the call may work on, or None when the call
cannot be read to its end (an unknown operation, a truncated argument): the caller then gives
it no identity worth having. Operation arguments are skipped by their XDR shape; only filehandles
and names are looked at, so a WRITE's data is never copied.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

_U32 = struct.Struct(">I")

# Each operation's arguments as a string of fixed shapes: u = 4 bytes, h = 8 bytes (hyper),
# v = verifier (8), s = stateid (16), S = session or device id (16), o = opaque or string,
# b = bitmap4, a = fattr4 (bitmap4 and opaque), A = array of stateids.
SIMPLE: dict[int, str] = {
    3: "u",  # ACCESS
    4: "us",  # CLOSE
    5: "hu",  # COMMIT
    7: "h",  # DELEGPURGE
    8: "s",  # DELEGRETURN
    9: "b",  # GETATTR
    10: "",  # GETFH
    11: "o",  # LINK
    13: "uhhho",  # LOCKT
    14: "uushh",  # LOCKU
    16: "",  # LOOKUPP (tracked)
    17: "a",  # NVERIFY
    19: "u",  # OPENATTR
    20: "su",  # OPEN_CONFIRM
    21: "suuu",  # OPEN_DOWNGRADE
    23: "",  # PUTPUBFH (tracked)
    24: "",  # PUTROOTFH (tracked)
    25: "shu",  # READ
    26: "hvuub",  # READDIR
    27: "",  # READLINK
    28: "o",  # REMOVE
    29: "oo",  # RENAME
    30: "h",  # RENEW
    31: "",  # RESTOREFH (tracked)
    32: "",  # SAVEFH (tracked)
    33: "o",  # SECINFO
    34: "sa",  # SETATTR
    35: "vouoou",  # SETCLIENTID
    36: "hv",  # SETCLIENTID_CONFIRM
    37: "a",  # VERIFY
    38: "shuo",  # WRITE
    39: "ho",  # RELEASE_LOCKOWNER
    41: "Suu",  # BIND_CONN_TO_SESSION
    44: "S",  # DESTROY_SESSION
    45: "s",  # FREE_STATEID
    46: "ubhuhubb",  # GET_DIR_DELEGATION
    47: "Suub",  # GETDEVICEINFO
    48: "uuhv",  # GETDEVICELIST
    50: "uuuhhhsu",  # LAYOUTGET
    52: "u",  # SECINFO_NO_NAME
    53: "Suuuu",  # SEQUENCE
    54: "oo",  # SET_SSV
    55: "A",  # TEST_STATEID
    57: "h",  # DESTROY_CLIENTID
    58: "u",  # RECLAIM_COMPLETE
    59: "shh",  # ALLOCATE
    62: "shh",  # DEALLOCATE
    63: "shhb",  # IO_ADVISE
    65: "hhshhhhSuo",  # LAYOUTSTATS
    66: "s",  # OFFLOAD_CANCEL
    67: "s",  # OFFLOAD_STATUS
    68: "shu",  # READ_PLUS
    69: "shu",  # SEEK
    70: "suhhhhhho",  # WRITE_SAME
    71: "sshhh",  # CLONE
    72: "o",  # GETXATTR
    73: "uoo",  # SETXATTR
    74: "hu",  # LISTXATTRS
    75: "o",  # REMOVEXATTR
}
FIXED = {"u": 4, "h": 8, "v": 8, "s": 16, "S": 16}
OP_LOOKUP, OP_LOOKUPP, OP_OPEN, OP_PUTFH, OP_PUTPUBFH, OP_PUTROOTFH = 15, 16, 18, 22, 23, 24
OP_RESTOREFH, OP_SAVEFH, OP_WRITE = 31, 32, 38
MAX_OPS = 1024


class Malformed(Exception):
    """The call's arguments do not parse (or use an operation this reader does not know)."""


class Reader:
    """XDR decoding over a buffer, from `pos`."""

    __slots__ = ("buf", "pos", "end")

    def __init__(self, buf: bytes | bytearray | memoryview, pos: int = 0) -> None:
        self.buf = buf
        self.pos = pos
        self.end = len(buf)

    def skip(self, n: int) -> None:
        self.pos += n
        if self.pos > self.end:
            raise Malformed("truncated")

    def u32(self) -> int:
        if self.pos + 4 > self.end:
            raise Malformed("truncated")
        (value,) = _U32.unpack_from(self.buf, self.pos)
        self.pos += 4
        return value

    def opaque(self) -> bytes:
        n = self.u32()
        start = self.pos
        self.skip((n + 3) & ~3)
        return bytes(self.buf[start : start + n])

    def skip_opaque(self) -> None:
        n = self.u32()
        self.skip((n + 3) & ~3)

    def shape(self, shape: str) -> None:
        for c in shape:
            if c in FIXED:
                self.skip(FIXED[c])
            elif c == "o":
                self.skip_opaque()
            elif c == "b":
                self.skip(4 * self.u32())
            elif c == "a":
                self.skip(4 * self.u32())
                self.skip_opaque()
            elif c == "A":
                self.skip(16 * self.u32())

    def array(self, item: Callable[[Reader], None]) -> None:
        for _ in range(self.u32()):
            item(self)


def _sec_parms(r: Reader) -> None:  # callback_sec_parms4
    flavor = r.u32()
    if flavor == 1:  # AUTH_SYS: stamp, machine name, uid, gid, gids
        r.shape("uouu")
        r.skip(4 * r.u32())
    elif flavor == 6:  # RPCSEC_GSS
        r.shape("uoo")
    elif flavor != 0:
        raise Malformed(f"callback flavor {flavor}")


def _netloc(r: Reader) -> None:
    kind = r.u32()
    r.shape("oo" if kind == 3 else "o")


def _channel_attrs(r: Reader) -> None:
    r.shape("uuuuuu")
    r.skip(4 * r.u32())


def _create(r: Reader) -> None:
    kind = r.u32()
    if kind == 5:  # NF4LNK: link data
        r.skip_opaque()
    elif kind in (3, 4):  # NF4BLK, NF4CHR: device numbers
        r.shape("uu")
    r.shape("oa")


def _lock(r: Reader) -> None:
    r.shape("uuhh")
    r.shape("usuho" if r.u32() else "su")


def _exchange_id(r: Reader) -> None:
    r.shape("vou")
    how = r.u32()
    if how in (1, 2):
        r.shape("bb")
    if how == 2:
        r.array(lambda r: r.skip_opaque())
        r.array(lambda r: r.skip_opaque())
        r.shape("uu")
    elif how not in (0, 1):
        raise Malformed(f"state protection {how}")
    r.array(lambda r: r.shape("oohu"))


def _create_session(r: Reader) -> None:
    r.shape("huu")
    _channel_attrs(r)
    _channel_attrs(r)
    r.shape("u")
    r.array(_sec_parms)


def _layoutcommit(r: Reader) -> None:
    r.shape("hhus")
    if r.u32():
        r.shape("h")
    if r.u32():
        r.shape("hu")
    r.shape("uo")


def _layoutreturn(r: Reader) -> None:
    r.shape("uuu")
    if r.u32() == 1:
        r.shape("hhso")


def _want_delegation(r: Reader) -> None:
    r.shape("u")
    if r.u32() == 1:  # CLAIM_PREVIOUS
        r.shape("u")


def _copy(r: Reader) -> None:
    r.shape("sshhhuu")
    r.array(_netloc)


def _copy_notify(r: Reader) -> None:
    r.shape("s")
    _netloc(r)


def _backchannel_ctl(r: Reader) -> None:
    r.shape("u")
    r.array(_sec_parms)


def _layouterror(r: Reader) -> None:
    r.shape("hhs")
    r.skip(24 * r.u32())


SPECIAL: dict[int, Callable[[Reader], None]] = {
    6: _create,
    12: _lock,
    40: _backchannel_ctl,
    42: _exchange_id,
    43: _create_session,
    49: _layoutcommit,
    51: _layoutreturn,
    56: _want_delegation,
    60: _copy,
    61: _copy_notify,
    64: _layouterror,
}


def _open_name(r: Reader) -> bytes | None:
    """Skip OPEN's arguments; the name it opens in the current directory, if it names one."""
    r.shape("uuuho")
    if r.u32() == 1:  # OPEN4_CREATE
        mode = r.u32()
        r.shape({0: "a", 1: "a", 2: "v", 3: "va"}.get(mode, "?"))
        if mode > 3:
            raise Malformed(f"create mode {mode}")
    claim = r.u32()
    if claim in (0, 3):  # CLAIM_NULL, CLAIM_DELEGATE_PREV
        return r.opaque()
    if claim == 2:  # CLAIM_DELEGATE_CUR
        r.shape("s")
        return r.opaque()
    if claim in (1, 5):
        r.shape("u" if claim == 1 else "s")
    elif claim not in (4, 6):
        raise Malformed(f"open claim {claim}")
    return None


def export_of_handle(handle: bytes) -> int | None:
    """The export id in a ganesha 4 NFSv4 filehandle (version byte, flags, export id in network
    order, ...), or None for a handle that is not one."""
    if len(handle) < 5:
        return None
    return int.from_bytes(handle[2:4], "big")


def exports_touched(
    buf: bytes | bytearray | memoryview,
    pos: int,
    root: int,
    junctions: dict[bytes, int],
    handles: list[int] | None = None,
    writes: list[int] | None = None,
) -> set[int] | None:
    """Every export a COMPOUND4args starting at `pos` may work on (None: unreadable). `root` is
    the pseudo root's export; `junctions` maps a name in the pseudo root to the export there.
    `handles`, when given, receives where each PUTFH's filehandle is in `buf` (the offset of its
    length word), for the proxy to check it (strata.engines.nfs_subtree); `writes` where each
    WRITE's data is (the offset of its length word), so the proxy can move it without reading it,
    parsing the start of a record first (the answer is then None: the rest is not there)."""
    r = Reader(buf, pos)
    try:
        r.skip_opaque()  # tag
        r.u32()  # minor version
        count = r.u32()
        if count > MAX_OPS:
            raise Malformed("too many operations")
        current: frozenset[int] = frozenset()
        saved: frozenset[int] = frozenset()
        touched: set[int] = set()

        def lookup(name: bytes | None) -> frozenset[int]:
            if name is None:
                return current
            if name == b"..":
                return current | {root}
            return frozenset(junctions.get(name, e) if e == root else e for e in current)

        for _ in range(count):
            op = r.u32()
            if op == OP_PUTFH:
                if handles is not None:
                    handles.append(r.pos)
                export = export_of_handle(r.opaque())
                current = frozenset() if export is None else frozenset((export,))
            elif op in (OP_PUTROOTFH, OP_PUTPUBFH):
                current = frozenset((root,))
            elif op == OP_LOOKUP:
                current = lookup(r.opaque())
            elif op == OP_LOOKUPP:
                current = current | {root}
            elif op == OP_OPEN:
                current = lookup(_open_name(r))
            elif op == OP_SAVEFH:
                saved = current
            elif op == OP_RESTOREFH:
                current = saved
            elif op == OP_WRITE and writes is not None:
                r.shape("shu")
                writes.append(r.pos)
                r.skip_opaque()
            elif op in SIMPLE:
                r.shape(SIMPLE[op])
            elif op in SPECIAL:
                SPECIAL[op](r)
            else:
                raise Malformed(f"operation {op}")
            touched |= current
        return touched
    except Malformed:
        return None
