"""Prints the share of operations that round-trip through botocore, per service and direction."""

from __future__ import annotations

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from tests.protocol.test_roundtrip import SHARES

    if not SHARES:
        return
    terminalreporter.section("protocol round trips (operations that round-trip / all)")
    total_ok = total = 0
    for (service, kind), (ok, count, others) in sorted(SHARES.items()):
        total_ok, total = total_ok + ok, total + count
        note = f"  not: {', '.join(others)}" if others else ""
        terminalreporter.write_line(f"{service:12} {kind:7} {ok:4}/{count:<4}{note}")
    terminalreporter.write_line(f"{'all':12} {'':7} {total_ok:4}/{total:<4} ({100 * total_ok / total:.1f}%)")
