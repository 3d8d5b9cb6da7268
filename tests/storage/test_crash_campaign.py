"""The crash campaign (bench/crash_campaign.py) in short: five kill -9 rounds under concurrent S3
and DynamoDB writes; nothing acknowledged lost, nothing torn, no partial transaction, no leak."""

from __future__ import annotations

from pathlib import Path

from bench.crash_campaign import run_campaign


def test_five_kill_9_rounds_lose_nothing(tmp_path: Path) -> None:
    lines: list[str] = []
    totals = run_campaign(tmp_path / "data", rounds=5, seed=12, log=lines.append)
    assert totals.rounds == 5
    assert totals.acked_writes > 100 and totals.key_states_checked > 100
    assert totals.problems == [], "\n".join(totals.problems[:20] + lines)
    assert (totals.lost, totals.torn, totals.partial_tx, totals.leaked, totals.orphan_blobs) == (
        0,
        0,
        0,
        0,
        0,
    )
    assert totals.unexpected_errors == 0
