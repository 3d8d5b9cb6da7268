"""The generic engine supervisor: processes, ports, stable endpoints (no Strata server needed)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from strata.engines.endpoint import EndpointRouter, port_open
from strata.engines.nft import nft_usable
from strata.engines.ports import PortAllocator
from strata.engines.process import EngineError, EngineProcess, ProcessSpec, pid_alive, wait_until

ECHO = textwrap.dedent(
    """
    import socket, sys
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16)
    tag = sys.argv[2].encode()
    while True:
        c, _ = s.accept()
        try:
            data = c.recv(100)
            if data:
                c.sendall(tag + b":" + data)
        except OSError:
            pass
        c.close()
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ask(port: int, msg: bytes = b"hi") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(msg)
        return c.recv(100)


def echo_server(tmp: Path, tag: str) -> tuple[EngineProcess, int]:
    script = tmp / "echo.py"
    script.write_text(ECHO)
    port = free_port()
    proc = EngineProcess(
        ProcessSpec(
            name=f"echo-{tag}",
            run_dir=tmp / tag,
            argv=[sys.executable, str(script), str(port), tag],
            match=str(script),
        )
    )
    proc.start(ready=lambda: port_open(port), timeout=20)
    return proc, port


def test_process_start_ready_stop(tmp_path: Path) -> None:
    proc, port = echo_server(tmp_path, "a")
    assert ask(port) == b"a:hi"
    pid = proc.pid
    assert int(proc.spec.pidfile.read_text()) == pid
    proc.stop()
    assert not pid_alive(pid)
    assert not proc.spec.pidfile.exists()


def test_process_exit_while_starting_reports_log(tmp_path: Path) -> None:
    proc = EngineProcess(
        ProcessSpec(
            name="bad",
            run_dir=tmp_path,
            argv=[sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"],
        )
    )
    with pytest.raises(EngineError, match="boom"):
        proc.start(ready=lambda: False, timeout=20)


def test_orphan_from_pidfile_is_replaced(tmp_path: Path) -> None:
    first, port = echo_server(tmp_path, "o")
    old_pid = first.pid
    # A new supervisor (as after a Strata restart) finds the pidfile and replaces the old process.
    second = EngineProcess(first.spec)
    second.start(ready=lambda: port_open(port), timeout=20)
    assert wait_until(lambda: not pid_alive(old_pid) or first.proc.poll() is not None, 10)
    assert second.pid != old_pid
    assert ask(port) == b"o:hi"
    second.stop()


def test_child_dies_with_its_parent(tmp_path: Path) -> None:
    """kill -9 of the supervising process takes its engines with it (PR_SET_PDEATHSIG)."""
    script = tmp_path / "echo.py"
    script.write_text(ECHO)
    port = free_port()
    parent_code = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from strata.engines.process import EngineProcess, ProcessSpec
        from strata.engines.endpoint import port_open
        p = EngineProcess(ProcessSpec(name="child", run_dir=Path({str(tmp_path)!r}),
                          argv=[sys.executable, {str(script)!r}, "{port}", "c"]))
        p.start(ready=lambda: port_open({port}), timeout=20)
        print(p.pid, flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True)
    child_pid = int(parent.stdout.readline())
    assert pid_alive(child_pid)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    assert wait_until(lambda: not pid_alive(child_pid), 10)


def test_ports_persist_and_do_not_collide(tmp_path: Path) -> None:
    db = tmp_path / "ports.db"
    low = free_port()
    alloc = PortAllocator(db, (low, low + 50))
    a = alloc.allocate("rds/a")
    b = alloc.allocate("cache/b")
    assert a != b
    assert alloc.allocate("rds/a") == a
    again = PortAllocator(db, (low, low + 50))  # as after a restart
    assert again.get("rds/a") == a and again.get("cache/b") == b
    again.release_prefix("rds/")
    assert again.get("rds/a") is None
    assert again.owned() == {"cache/b": b}


def test_ports_skip_ports_in_use(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        alloc = PortAllocator(tmp_path / "p.db", (port, port + 20))
        assert alloc.allocate("x") != port


@pytest.mark.parametrize("mode", ["haproxy", "nft"])
def test_endpoint_switches_backend_and_survives_restart(tmp_path: Path, mode: str) -> None:
    if mode == "nft" and not nft_usable():
        pytest.skip("kernel redirection needs root and nftables")
    a, port_a = echo_server(tmp_path, "a")
    b, port_b = echo_server(tmp_path, "b")
    front = free_port()
    router = EndpointRouter(tmp_path / "router", mode=mode)
    try:
        router.start()
        router.set_route("db1", front, [("127.0.0.1", port_a)])
        assert ask(front) == b"a:hi"
        router.set_route("db1", front, [("127.0.0.1", port_b)])  # failover: same port, new backend
        assert ask(front) == b"b:hi"
        other = free_port()
        router.set_route("db2", other, [("127.0.0.1", port_a)])  # a reload keeps the first route
        assert ask(front) == b"b:hi" and ask(other) == b"a:hi"
        router.set_route(
            "ro", front, [("127.0.0.1", port_a), ("127.0.0.1", port_b)], balance=True, host="127.0.0.2"
        )  # same port, another loopback address
        with socket.create_connection(("127.0.0.2", front), timeout=5) as c:
            c.sendall(b"x")
            first = c.recv(100)
        replies = {first}
        for _ in range(5):
            with socket.create_connection(("127.0.0.2", front), timeout=5) as c:
                c.sendall(b"hi")
                replies.add(c.recv(100))
        assert {b"a:hi", b"b:hi"} <= replies
        assert ask(front) == b"b:hi"
        router.remove_route("db2")
        assert wait_until(lambda: not port_open(other), 10)
        router.stop()
        assert wait_until(lambda: not port_open(front), 10)
        restarted = EndpointRouter(tmp_path / "router", mode=mode)  # routes come back from routes.json
        restarted.start()
        router = restarted
        assert ask(front) == b"b:hi"
    finally:
        router.stop()
        a.stop()
        b.stop()


def _tables() -> str:
    return subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, timeout=10).stdout


def test_nft_table_does_not_outlive_a_killed_owner(tmp_path: Path) -> None:
    """kill -9 of the process that owns the redirect rules removes them (its janitor), so they
    never send a later program's connections to a dead engine's port (issue 12)."""
    if not nft_usable():
        pytest.skip("kernel redirection needs root and nftables")
    a, port_a = echo_server(tmp_path, "a")
    front = free_port()
    owner_code = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from strata.engines.endpoint import EndpointRouter
        r = EndpointRouter(Path({str(tmp_path / "router")!r}), name="owner", mode="nft")
        r.start()
        r.set_route("db", {front}, [("127.0.0.1", {port_a})])
        print(r.table, flush=True)
        time.sleep(600)
        """
    )
    owner = subprocess.Popen([sys.executable, "-c", owner_code], stdout=subprocess.PIPE, text=True)
    try:
        table = owner.stdout.readline().strip()
        assert table and f"table ip {table}" in _tables()
        assert ask(front) == b"a:hi"
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        assert wait_until(lambda: f"table ip {table}" not in _tables(), 30)
    finally:
        owner.kill()
        a.stop()


def test_a_stale_table_under_a_reused_pid_is_removed_at_start(tmp_path: Path) -> None:
    """A table left by a dead owner whose pid now belongs to another process (here: this test) is
    recognised by its start time, removed, and never redirects ahead of the new owner's rules."""
    if not nft_usable():
        pytest.skip("kernel redirection needs root and nftables")
    a, port_a = echo_server(tmp_path, "a")
    front, dead = free_port(), free_port()
    stale = f"strata_{os.getpid()}_1_stale"  # this pid, but not this process's start time
    script = (
        f"table ip {stale} {{\n  chain out {{\n    type nat hook output priority -150; policy accept;\n"
        f"    ip daddr 127.0.0.1 tcp dport {front} redirect to :{dead}\n  }}\n}}\n"
    )
    subprocess.run(["nft", "-f", "-"], input=script, text=True, check=True, timeout=10)
    router = EndpointRouter(tmp_path / "router", mode="nft")
    try:
        router.start()
        router.set_route("db", front, [("127.0.0.1", port_a)])
        assert f"table ip {stale}" not in _tables()
        assert ask(front) == b"a:hi"
    finally:
        subprocess.run(["nft", "delete", "table", "ip", stale], capture_output=True, timeout=10)
        router.stop()
        a.stop()
