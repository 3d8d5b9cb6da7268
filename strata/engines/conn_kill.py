"""Ending a server's established TCP connections from outside it: the kernel's SOCK_DESTROY.

An engine that cannot drop its clients itself (memcached has no CLIENT KILL) while a kernel route
in front of it is re-pointed (endpoint.py: a redirected connection keeps its old destination
until it closes) needs its connections cut so clients reconnect through the new route. `ss -K`
(iproute2) asks the kernel to destroy the sockets matched: the engine sees ECONNABORTED and
closes its side, the client gets a reset. It needs CAP_NET_ADMIN and a kernel built with
CONFIG_INET_DIAG_DESTROY; `can_kill()` tries it once on a connection of its own.

    if can_kill():
        kill_connections("127.0.1.1", 6379)   # every connection accepted on that address:port
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess

log = logging.getLogger("strata.engines")

_USABLE: bool | None = None
TIMEOUT = 10.0
PROBE_WAIT = 5.0  # the reset is sent before ss returns: this only bounds a failed probe


def kill_connections(address: str, port: int) -> bool:
    """Destroy the connected sockets whose local end is `address`:`port` (the server side of the
    connections accepted there; never the listening socket). False when ss could not run."""
    binary = shutil.which("ss")
    if binary is None:
        return False
    # `state connected`: every state but LISTEN and CLOSED, so the listener itself is spared
    argv = [binary, "-K", "-t", "-n", "state", "connected", "src", address, "sport", "=", f":{port}"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired):
        log.warning("ss -K %s:%d could not run", address, port, exc_info=True)
        return False
    if done.returncode != 0:
        log.warning("ss -K %s:%d: %s", address, port, done.stderr.strip())
    return done.returncode == 0


def can_kill() -> bool:
    """Does `kill_connections` really end connections here? (Tried once, on a loopback pair.)"""
    global _USABLE
    if _USABLE is None:
        _USABLE = _probe()
        if not _USABLE:
            log.info("sockets cannot be destroyed here (ss -K): connections are not cut")
    return _USABLE


def _probe() -> bool:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as client:
            accepted, _ = listener.accept()
            with accepted:
                if not kill_connections("127.0.0.1", port):
                    return False
                client.settimeout(PROBE_WAIT)
                try:
                    return client.recv(1) == b""  # a destroyed peer: reset (or at least closed)
                except TimeoutError:  # ss ran but destroyed nothing
                    return False
                except OSError:
                    return True
