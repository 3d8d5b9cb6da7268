"""The engine address: one IPv4 address where other machines reach the engines' endpoints, which
can float from one machine to another (issue 22: the gateway that runs the engines may change).

`--engine-address ADDR/DEV` (Settings.engine_address): RDS instance and Aurora writer endpoints
and ElastiCache primary endpoints are then advertised as ADDR with their own ports and served
there (strata.engines.endpoint: routes whose host is ADDR). DEV is the network device that holds
ADDR (e.g. `10.0.0.50/eth0`); it is needed by the kernel redirection (nft mode), which hands a
connection arriving for ADDR to an engine on 127.0.0.1: the kernel allows that only on a device
with `route_localnet` set (strata.engines.nft.allow_loopback_targets), and the routers' tables
then drop every other packet that arrives from outside for 127.0.0.0/8.

More addresses (`A,B,C/DEV` or `A-B/DEV`): the first is the one above; the others are a pool for
the endpoints with loopback addresses of their own (`public_host`: Aurora reader and custom
endpoints, ElastiCache reader and node endpoints, EFS mount targets), each served with its port on
its pool address. An EFS mount target may ask for a pool address (`take_public_host`) and frees
it when deleted (`forget_public_host`): its loopback address is its own, never used again.
The pool addresses given are recorded (`EngineAddress.state`: Settings.engine_addresses_record,
with --metadata shared under the engines' state so every engine host serves the same ones),
written durably and read again whenever the file changed.

The address itself is claimed by the machine that runs the engines (`claim`) and released by one
that stops (`release`); a claim announces the new owner with a gratuitous ARP, so peers whose ARP
cache still names the old owner's hardware address switch at once instead of after their cache
times out. The announcement is sent from Python (a raw packet socket), so no `arping` is needed.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import struct
import subprocess
import threading
from pathlib import Path

from strata.config import EngineAddress, parse_engine_address
from strata.storage.blobs import fsync_path, write_durably

__all__ = [
    "EngineAddress",
    "parse_engine_address",
    "claim",
    "release",
    "claim_all",
    "release_all",
    "announce",
    "holds",
    "public_host",
    "take_public_host",
    "forget_public_host",
    "adopt_record",
    "nft_addresses",
]

log = logging.getLogger("strata.engines")

ETH_P_ARP = 0x0806
ANNOUNCEMENTS = 2  # gratuitous ARPs per claim (one may be lost on a busy link)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    cp = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20)
    if check and cp.returncode != 0:
        raise OSError(f"ip {' '.join(args)}: {cp.stderr.strip()}")
    return cp


def holds(address: str, dev: str | None = None) -> bool:
    """Whether this machine (network namespace) has `address` on `dev` (any device if None)."""
    args = ["-o", "-4", "addr", "show", *(["dev", dev] if dev else []), "to", f"{address}/32"]
    return bool(_ip(*args, check=False).stdout.strip())


def claim(address: str, dev: str) -> None:
    """Take `address` on `dev` (idempotent) and announce it with gratuitous ARPs. Root only."""
    if not holds(address, dev):
        cp = _ip("addr", "add", f"{address}/32", "dev", dev, check=False)
        if cp.returncode != 0 and not holds(address, dev):
            raise OSError(f"cannot claim {address} on {dev}: {cp.stderr.strip()}")
    announce(address, dev)


def release(address: str, dev: str) -> None:
    """Give `address` up on `dev` (idempotent): packets for it are no longer taken here (open
    connections to it stall, as on a lost machine), and the next owner's announcement points
    peers to that one. Root only."""
    if holds(address, dev):
        cp = _ip("addr", "del", f"{address}/32", "dev", dev, check=False)
        if cp.returncode != 0 and holds(address, dev):
            raise OSError(f"cannot release {address} on {dev}: {cp.stderr.strip()}")


def claim_all(exposed: EngineAddress) -> None:
    """Claim every address of `exposed` (the first and its pool) on its device."""
    for address in exposed.addresses:
        claim(address, exposed.dev)


def release_all(exposed: EngineAddress) -> None:
    """Release every address of `exposed` (the first and its pool) from its device."""
    for address in exposed.addresses:
        release(address, exposed.dev)


def nft_addresses(exposed: EngineAddress) -> str:
    """Every address of `exposed` as one nft match value (an anonymous set when several)."""
    return exposed.address if not exposed.pool else "{ " + ", ".join(exposed.addresses) + " }"


_LOOPBACK = "127.0.0.1"
# state file -> (its stamp when read, loopback address -> pool address)
_assigned: dict[str, tuple[tuple[int, int, int] | None, dict[str, str]]] = {}
_assigning = threading.Lock()
_exhausted_logged: set[tuple[str, str]] = set()


def public_host(exposed: EngineAddress, host: str, assign: bool = True) -> str | None:
    """The address of `exposed` where other machines reach an endpoint on `host`, or None (it
    stays on this machine). 127.0.0.1's endpoints share the first address (each has its own port);
    every other loopback address gets a pool address of its own on first use (the endpoints that
    share a loopback address differ by port, so they share its pool address too), recorded in
    `exposed.state` so a restart gives the same one. A full pool leaves the newcomer on loopback
    (logged once): it still works on this machine, and an operator widens the range and restarts
    (taking an address from an endpoint that clients already know would break them).
    `assign=False`: only look up (None for a loopback address with no pool address yet)."""
    if host == _LOOPBACK:
        return exposed.address
    if host in exposed.addresses:
        return host
    if not host.startswith("127.") or not exposed.pool or exposed.state is None:
        return None
    with _assigning:
        table = _table(exposed.state)
        if table.get(host) in exposed.pool:
            return table[host]
        if not assign:
            return None
        taken = set(table.values())
        free = [a for a in exposed.pool if a not in taken]
        if not free:
            if (exposed.state, host) not in _exhausted_logged:
                _exhausted_logged.add((exposed.state, host))
                log.warning(
                    "engine address pool full (%d addresses): endpoints on %s stay on this machine; "
                    "give --engine-address more addresses",
                    len(exposed.pool),
                    host,
                )
            return None
        table[host] = free[0]
        _save(exposed.state, table)
        return free[0]


def take_public_host(exposed: EngineAddress, host: str, public: str) -> bool:
    """Give loopback address `host` the pool address `public` if it is free (an EFS mount target
    created with that IpAddress); False if it is not in the pool or taken."""
    if (
        not host.startswith("127.")
        or host == _LOOPBACK
        or public not in exposed.pool
        or exposed.state is None
    ):
        return False
    with _assigning:
        table = _table(exposed.state)
        if table.get(host) == public:
            return True
        if public in table.values():
            return False
        table[host] = public
        _save(exposed.state, table)
        return True


def forget_public_host(exposed: EngineAddress, host: str) -> None:
    """Free the pool address of loopback address `host`, for an endpoint that is gone for good and
    whose loopback address no later endpoint shares (an EFS mount target's own, drawn at random):
    kept, it would hold a pool address forever. Endpoints on shared loopback addresses (cache
    node n, the Aurora reader) keep theirs, as the next user of the address takes it again."""
    if exposed.state is None:
        return
    with _assigning:
        table = _table(exposed.state)
        if table.pop(host, None) is not None:
            _save(exposed.state, table)


def _table(state: str) -> dict[str, str]:
    """The record of `state` (loopback address -> pool address), read again whenever the file
    changed since this process last read or wrote it: with --metadata it is shared (under the
    engines' state), so a gateway that becomes the engine host after another assigned addresses
    there must see those, not a copy it read earlier. One stat a call: assignments are rare and the
    file is small."""
    seen = _stamp(state)
    cached = _assigned.get(state)
    if cached is not None and cached[0] == seen:
        return cached[1]
    try:
        table = json.loads(Path(state).read_text())
    except (OSError, ValueError):
        table = {}
    _assigned[state] = (seen, table)
    return table


def _stamp(state: str) -> tuple[int, int, int] | None:
    """What tells one version of the record from another (each write replaces the file)."""
    try:
        st = os.stat(state)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _save(state: str, table: dict[str, str]) -> None:
    """Write the record durably (an address clients know must survive a power loss too)."""
    path = Path(state)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_durably(path, json.dumps(table, indent=1, sort_keys=True).encode())
    _assigned[state] = (_stamp(state), table)


def adopt_record(exposed: EngineAddress | None, legacy: Path) -> None:
    """Move a record kept before it was shared (a gateway's own `DATA_DIR/engine-addresses.json`)
    to `exposed.state` (with --metadata, under the engines' state on the blob dir) when no shared
    record exists yet: the first engine host after an upgrade keeps the addresses clients know.
    Once a shared record exists it wins, and a gateway's own one is left as it is (logged): the
    shared one is what every later host reads."""
    if exposed is None or exposed.state is None or not legacy.is_file():
        return
    target = Path(exposed.state)
    if target == legacy:
        return
    with _assigning:
        if target.exists():
            log.info("engine address pool: %s is not used (%s is the record)", legacy, target)
            return
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_durably(target, legacy.read_bytes())
        legacy.unlink()
        fsync_path(legacy.parent)
        log.warning("engine address pool: the record %s moved to %s", legacy, target)


def announce(address: str, dev: str, count: int = ANNOUNCEMENTS) -> None:
    """Gratuitous ARP requests (sender and target: `address`) broadcast on `dev`, which update
    every peer's ARP cache entry for `address` to this device's hardware address."""
    mac = bytes.fromhex(Path(f"/sys/class/net/{dev}/address").read_text().strip().replace(":", ""))
    ip = socket.inet_aton(address)
    broadcast = b"\xff" * 6
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + ip + b"\x00" * 6 + ip
    frame = broadcast + mac + struct.pack("!H", ETH_P_ARP) + arp
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP)) as s:
        s.bind((dev, ETH_P_ARP))
        for _ in range(count):
            s.send(frame.ljust(60, b"\x00"))
