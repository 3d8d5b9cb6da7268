"""The NBD wire protocol spoken by hand: many requests in flight on one connection, small and
large ones mixed (served on the spot and by the pool), answered out of order by handle; errors
answered with NBD's error numbers while the connection carries on."""

from __future__ import annotations

import os
import socket
import struct
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

from tests.services.ec2.helpers import attach

NBDMAGIC, IHAVEOPT, OPT_GO = 0x4E42444D41474943, 0x49484156454F5054, 7
REQUEST, REPLY = 0x25609513, 0x67446698
READ, WRITE, DISC, FLUSH, TRIM, WRITE_ZEROES = 0, 1, 2, 3, 4, 6
FUA = 1
EINVAL, ENOSPC = 22, 28
MIB = 1024 * 1024
GIB = 1024 * MIB


def recv_exact(sock: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        assert chunk, "the server closed the connection"
        out += chunk
    return bytes(out)


def option(sock: socket.socket, opt: int, data: bytes) -> list[tuple[int, bytes]]:
    """Send an option; its replies (kind, data) up to and with the final one."""
    sock.sendall(struct.pack(">QII", IHAVEOPT, opt, len(data)) + data)
    out = []
    while True:
        _magic, _opt, kind, length = struct.unpack(">QIII", recv_exact(sock, 20))
        out.append((kind, recv_exact(sock, length)))
        if kind not in (2, 3, 4):  # SERVER, INFO, META_CONTEXT come before the final reply
            return out


def connect(uri: str, *, structured: bool = False) -> socket.socket:
    """Fixed newstyle handshake (with `structured`: structured replies and base:allocation
    negotiated) and NBD_OPT_GO for the URI's export; returns the socket."""
    u = urlparse(uri)
    sock = socket.create_connection((u.hostname, u.port), timeout=60)
    magic, opt, _flags = struct.unpack(">QQH", recv_exact(sock, 18))
    assert (magic, opt) == (NBDMAGIC, IHAVEOPT)
    sock.sendall(struct.pack(">I", 3))  # FIXED_NEWSTYLE | NO_ZEROES
    name = u.path.lstrip("/").encode()
    if structured:
        query = struct.pack(">I", len(name)) + name + struct.pack(">II", 1, 15) + b"base:allocation"
        assert option(sock, 10, query) == [(1 << 31 | 3, b"structured replies first")]
        assert option(sock, 8, b"") == [(1, b"")]
        assert option(sock, 10, query) == [(4, struct.pack(">I", 1) + b"base:allocation"), (1, b"")]
    data = struct.pack(">I", len(name)) + name + struct.pack(">H", 0)
    sock.sendall(struct.pack(">QII", IHAVEOPT, OPT_GO, len(data)) + data)
    while True:
        _magic, _opt, kind, length = struct.unpack(">QIII", recv_exact(sock, 20))
        recv_exact(sock, length)
        if kind == 1:  # NBD_REP_ACK: transmission begins
            return sock
        assert kind == 3, f"unexpected option reply {kind}"


def request(kind: int, handle: int, offset: int, length: int, data: bytes = b"", flags: int = 0) -> bytes:
    return struct.pack(">IHHQQI", REQUEST, flags, kind, handle, offset, length) + data


def replies(sock: socket.socket, reads: dict[int, int], count: int) -> dict[int, tuple[int, bytes]]:
    """`count` simple replies by handle: (error, data); `reads` says which handles carry data."""
    out = {}
    for _ in range(count):
        magic, error, handle = struct.unpack(">IIQ", recv_exact(sock, 16))
        assert magic == REPLY
        data = recv_exact(sock, reads[handle]) if handle in reads and error == 0 else b""
        out[handle] = (error, data)
    return out


def test_pipelined_requests_small_and_large_answered_by_handle(strata_server) -> None:  # noqa: ANN001
    ec2 = strata_server.client("ec2")
    volume = ec2.create_volume(Size=1, AvailabilityZone="us-east-1a")["VolumeId"]
    sock = connect(attach(strata_server, ec2, volume, "us-east-1a", device="/dev/sdm"))
    small, large, odd = os.urandom(4096), os.urandom(3 * MIB), os.urandom(200_001)
    # All sent before any reply is read: the large write's payload arrives in pieces.
    sock.sendall(
        request(WRITE, 1, 0, len(small), small)
        + request(WRITE, 2, 8 * MIB, len(large), large)
        + request(WRITE, 3, GIB - len(odd), len(odd), odd, flags=FUA)
        + request(WRITE_ZEROES, 4, 8 * MIB + 4096, 4096)
        + request(FLUSH, 5, 0, 0)
    )
    assert replies(sock, {}, 5) == {h: (0, b"") for h in range(1, 6)}
    expected = bytearray(large)
    expected[4096:8192] = bytes(4096)
    reads = {10: 4096, 11: 3 * MIB, 12: len(odd), 13: 70_000, 14: 1}
    sock.sendall(
        request(READ, 10, 0, 4096)
        + request(READ, 11, 8 * MIB, 3 * MIB)
        + request(READ, 12, GIB - len(odd), len(odd))
        + request(READ, 13, 100 * MIB, 70_000)  # never written: zeros
        + request(READ, 14, 8 * MIB + 4096, 1)
    )
    got = replies(sock, reads, 5)
    assert got[10] == (0, small)
    assert got[11] == (0, bytes(expected))
    assert got[12] == (0, odd)
    assert got[13] == (0, bytes(70_000))
    assert got[14] == (0, b"\x00")

    # Errors: past the end, an unknown command, a request over the 32 MiB limit (its payload
    # is read and dropped); the connection carries on and a DISC ends it cleanly.
    too_big = 33 * MIB
    sock.sendall(
        request(WRITE, 20, GIB - 10, 20, bytes(20))
        + request(READ, 21, GIB, 4096)
        + request(TRIM, 22, GIB - 4096, 8192)
        + request(99, 23, 0, 0)
        + request(WRITE, 24, 0, too_big, bytes(too_big))
        + request(READ, 25, 0, 4096)
    )
    got = replies(sock, {25: 4096}, 6)
    assert {h: e for h, (e, _) in got.items()} == {
        20: ENOSPC,
        21: EINVAL,
        22: ENOSPC,
        23: EINVAL,
        24: EINVAL,
        25: 0,
    }
    assert got[25][1] == small
    sock.sendall(request(DISC, 30, 0, 0))
    sock.settimeout(60)
    assert sock.recv(1) == b""  # closed after the DISC, no reply
    sock.close()


def test_a_detach_ends_a_connection_with_requests_in_flight(strata_server) -> None:  # noqa: ANN001
    ec2 = strata_server.client("ec2")
    volume = ec2.create_volume(Size=1, AvailabilityZone="us-east-1b")["VolumeId"]
    sock = connect(attach(strata_server, ec2, volume, "us-east-1b", device="/dev/sdn"))
    data = os.urandom(MIB)
    sock.sendall(b"".join(request(WRITE, h, h * MIB, MIB, data) for h in range(16)))
    ec2.detach_volume(VolumeId=volume)
    sock.settimeout(60)  # the end comes (EOF or reset), not a hang
    try:
        while sock.recv(65536):  # the replies that made it
            pass
    except ConnectionResetError:
        pass
    sock.close()
    ec2.get_waiter("volume_available").wait(
        VolumeIds=[volume], WaiterConfig={"Delay": 0.2, "MaxAttempts": 300}
    )
    ec2.delete_volume(VolumeId=volume)


def chunks(sock: socket.socket, count: int) -> dict[int, list[tuple[int, int, bytes]]]:
    """Structured replies to `count` requests, by handle: (flags, type, payload) chunks."""
    out: dict[int, list[tuple[int, int, bytes]]] = {}
    done = 0
    while done < count:
        magic, flags, kind, handle, length = struct.unpack(">IHHQI", recv_exact(sock, 20))
        assert magic == 0x668E33EF
        out.setdefault(handle, []).append((flags, kind, recv_exact(sock, length)))
        done += flags & 1
    return out


def test_structured_replies_and_block_status(strata_server) -> None:  # noqa: ANN001
    ec2 = strata_server.client("ec2")
    volume = ec2.create_volume(Size=1, AvailabilityZone="us-east-1c")["VolumeId"]
    sock = connect(attach(strata_server, ec2, volume, "us-east-1c", device="/dev/sdo"), structured=True)
    data = os.urandom(MIB)
    sock.sendall(request(WRITE, 1, 4 * MIB, MIB, data))
    assert replies(sock, {}, 1) == {1: (0, b"")}  # other commands keep simple replies
    sock.sendall(
        request(READ, 2, 4 * MIB, 4096)  # small: one OFFSET_DATA chunk, final
        + request(READ, 3, 4 * MIB, MIB)  # large (sendfile'd): OFFSET_DATA, then NONE
        + request(READ, 4, GIB, 1)  # past the end: an ERROR chunk
        + request(READ, 5, 0, 0)  # nothing to read: NONE
        + request(7, 6, 0, GIB)  # BLOCK_STATUS of the whole device
        + request(7, 7, 0, GIB, flags=8)  # ... REQ_ONE: one extent
    )
    got = chunks(sock, 6)
    offset = struct.pack(">Q", 4 * MIB)
    assert got[2] == [(1, 1, offset + data[:4096])]
    assert got[3] == [(0, 1, offset + data), (1, 0, b"")]
    assert got[4] == [(1, 2**15 + 1, struct.pack(">IH", EINVAL, 0))]
    assert got[5] == [(1, 0, b"")]
    hole, yes = 3, 0
    extents = [(4 * MIB, hole), (MIB, yes), (GIB - 5 * MIB, hole)]
    assert got[6] == [(1, 5, struct.pack(">I", 1) + b"".join(struct.pack(">II", *e) for e in extents))]
    assert got[7] == [(1, 5, struct.pack(">I", 1) + struct.pack(">II", *extents[0]))]
    sock.sendall(request(DISC, 8, 0, 0))
    sock.close()


def test_overlapping_pipelined_requests_take_effect_in_the_order_sent(strata_server) -> None:  # noqa: ANN001
    """A large write goes to the pool while small requests are served on the spot: a small write
    or a read overlapping it, sent right behind it, must not overtake it (a WRITE_ZEROES did, and
    the zeros were overwritten by the older data)."""
    ec2 = strata_server.client("ec2")
    volume = ec2.create_volume(Size=1, AvailabilityZone="us-east-1a")["VolumeId"]
    sock = connect(attach(strata_server, ec2, volume, "us-east-1a", device="/dev/sdn"))
    for round_ in range(40):
        at = (round_ % 8) * 4 * MIB
        data = os.urandom(2 * MIB)
        expected = bytearray(data)
        expected[8192:12288] = bytes(4096)
        expected[20000:20005] = b"later"
        sock.sendall(
            request(WRITE, 1, at, len(data), data)
            + request(WRITE_ZEROES, 2, at + 8192, 4096)
            + request(WRITE, 3, at + 20000, 5, b"later")
            + request(READ, 4, at, len(data))
        )
        got = replies(sock, {4: len(data)}, 4)
        assert {h: e for h, (e, _) in got.items()} == {1: 0, 2: 0, 3: 0, 4: 0}, round_
        assert got[4][1] == bytes(expected), round_
    sock.sendall(request(DISC, 9, 0, 0))
    sock.close()


def test_a_connection_opening_during_a_detach_is_not_served(strata_server) -> None:  # noqa: ANN001
    """DetachVolume ends the volume's connections, then flushes the volume (here: hundreds of
    MiB not yet flushed, so it takes a while). A client whose handshake ends in that time must
    not get a connection that keeps serving the detached volume (it did: the volume still looked
    attached until the detach was recorded, after the flush)."""
    ec2 = strata_server.client("ec2")
    volume = ec2.create_volume(Size=1, AvailabilityZone="us-east-1d")["VolumeId"]
    uri = attach(strata_server, ec2, volume, "us-east-1d", device="/dev/sdm")
    writer = connect(uri)
    chunk = os.urandom(4 * MIB)
    for h in range(64):  # 256 MiB acknowledged, none of it flushed
        writer.sendall(request(WRITE, h, h * 4 * MIB, len(chunk), chunk))
    assert replies(writer, {}, 64) == {h: (0, b"") for h in range(64)}
    u = urlparse(uri)
    late = socket.create_connection((u.hostname, u.port), timeout=60)
    assert struct.unpack(">QQH", recv_exact(late, 18))[:2] == (NBDMAGIC, IHAVEOPT)
    late.sendall(struct.pack(">I", 3))  # in its handshake: it has not named the export yet
    detaching = ThreadPoolExecutor(1).submit(ec2.detach_volume, VolumeId=volume)
    writer.settimeout(60)
    try:  # the detach has begun once the writer's connection ends
        while writer.recv(65536):
            pass
    except ConnectionResetError:
        pass
    name = u.path.lstrip("/").encode()
    go = option(late, OPT_GO, struct.pack(">I", len(name)) + name + struct.pack(">H", 0))
    detaching.result(timeout=120)
    if go[-1][0] == 1:  # NBD_REP_ACK: it got in; the detach must have ended it
        late.settimeout(60)
        late.sendall(request(READ, 1, 0, 4096))
        try:
            assert late.recv(16) == b"", "a connection opened during DetachVolume still serves"
        except ConnectionResetError:
            pass
    else:
        assert go[-1][0] == 1 << 31 | 6  # NBD_REP_ERR_UNKNOWN: no attached volume of that name
    late.close()
    writer.close()
    ec2.get_waiter("volume_available").wait(
        VolumeIds=[volume], WaiterConfig={"Delay": 0.2, "MaxAttempts": 300}
    )
    ec2.delete_volume(VolumeId=volume)


def test_a_stalled_connection_does_not_hold_up_another_volume(strata_server) -> None:  # noqa: ANN001
    """Large reads of an encrypted volume are served by worker threads; a client that sends many
    and reads no reply holds those threads in their sends. Another volume's FLUSH must still be
    answered (the workers were one pool shared by every connection, which it could fill)."""
    ec2 = strata_server.client("ec2")
    stalled = ec2.create_volume(Size=1, AvailabilityZone="us-east-1e", Encrypted=True)["VolumeId"]
    other = ec2.create_volume(Size=1, AvailabilityZone="us-east-1e")["VolumeId"]
    busy = connect(attach(strata_server, ec2, stalled, "us-east-1e", device="/dev/sdm"))
    busy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    busy.sendall(b"".join(request(READ, h, h * MIB, MIB) for h in range(200)))  # 200 MiB of replies
    sock = connect(attach(strata_server, ec2, other, "us-east-1e", device="/dev/sdn"))
    sock.sendall(request(WRITE, 1, 0, 2 * MIB, bytes(2 * MIB)) + request(FLUSH, 2, 0, 0))
    sock.settimeout(30)  # a starved FLUSH is never answered while the stalled client waits
    assert replies(sock, {}, 2) == {1: (0, b""), 2: (0, b"")}
    assert replies(busy, dict.fromkeys(range(200), MIB), 200) == {h: (0, bytes(MIB)) for h in range(200)}
    for s in (busy, sock):
        s.sendall(request(DISC, 99, 0, 0))
        s.close()
    for vol in (stalled, other):
        ec2.detach_volume(VolumeId=vol)
