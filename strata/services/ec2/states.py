"""States that move on their own, as on AWS: a volume is `creating` before `available`, an
attachment `attaching` before `attached` and `detaching` before it is gone, a snapshot `pending`
before `completed`, a new VPC or subnet `pending` before `available`.

Each is derived from the simulated clock (a record keeps when it started), so nothing has to run
for it to move and advancing the clock moves it too. The transitions are short (fractions of a
second) so programs that wait properly (boto3 waiters) barely wait, while a program that skips
the wait gets AWS's IncorrectState, as it would on AWS. `STRATA_EBS_STATE_SECONDS` sets every
one of them to that many seconds (tests use a long one and move the clock instead of waiting).
"""

from __future__ import annotations

import os

from strata.sim.clock import clock

SECONDS = {
    "creating": 0.3,  # volume: creating -> available
    "attaching": 0.2,  # attachment: attaching -> attached
    "detaching": 0.2,  # attachment: detaching -> (gone)
    "pending": 0.2,  # snapshot: the least time it is pending, however little it copies
    "network": 0.2,  # VPC, subnet: pending -> available
}
if os.environ.get("STRATA_EBS_STATE_SECONDS"):
    SECONDS = dict.fromkeys(SECONDS, float(os.environ["STRATA_EBS_STATE_SECONDS"]))


def attachments(doc: dict, now: float | None = None) -> list[dict]:
    """A volume's attachments that still exist, each with its current `state` (a copy)."""
    now = clock.time() if now is None else now
    raw = doc.get("attachments")
    if raw is None:  # a record from before multi-attach: one attachment or none
        raw = [doc["attachment"]] if doc.get("attachment") else []
    out = []
    for att in raw:
        if att.get("detach_at") is not None:
            if now >= att["detach_at"] + SECONDS["detaching"]:
                continue
            state = "detaching"
        elif now < att["time"] + SECONDS["attaching"]:
            state = "attaching"
        else:
            state = "attached"
        out.append({**att, "state": state})
    return out


def volume_state(doc: dict, now: float | None = None) -> str:
    """creating, available or in-use (AWS shows in-use from the moment an attach starts)."""
    now = clock.time() if now is None else now
    if now < doc.get("ready_at", 0):
        return "creating"
    return "in-use" if attachments(doc, now) else "available"


def network_state(doc: dict, now: float | None = None) -> str:
    """A VPC's or subnet's state: pending in its first moments after CreateVpc/CreateSubnet, then
    available (defaults and records from before states were kept: available)."""
    now = clock.time() if now is None else now
    return "pending" if now < doc.get("created", 0) + SECONDS["network"] else "available"


def snapshot_pending(doc: dict, now: float | None = None) -> bool:
    """Whether a snapshot whose record says completed still shows pending (its first moments)."""
    now = clock.time() if now is None else now
    return now < doc["start"] + SECONDS["pending"]
