"""The NFS statistics bus starts whatever the depth of the data dir (its socket path's length)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from strata.engines.ganesha_stats import StatsBus

pytestmark = pytest.mark.skipif(shutil.which("dbus-daemon") is None, reason="needs dbus-daemon")


@pytest.mark.parametrize("length", [99, 100])
def test_the_bus_starts_with_a_socket_path_of_any_length(tmp_path: Path, length: int) -> None:
    """dbus-daemon refuses a unix:path of 100 bytes or more: the EFS I/O metrics were silently
    empty when a server's data dir was that deep (pytest's under xdist)."""
    base = tmp_path / "d"
    run_dir = base / ("x" * (length - len(str(base)) - len("/bus") - 1))
    assert len(str(run_dir / "bus")) == length
    bus = StatsBus(run_dir)
    try:
        assert bus.start(timeout=15)
        assert bus.counters([]) == {}
    finally:
        bus.stop()
