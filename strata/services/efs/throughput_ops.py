"""Throughput limits and Bursting credits of the file systems (mixed into EFSProvider): what
applies the limits of strata.services.efs.throughput to a file system's record and mount targets,
settles burst credits (every SETTLE_SECONDS from the supervisor, and before CloudWatch publishes)
and keeps the balance in the file system's record (every STORE_CREDITS_SECONDS and at stop; a
kill -9 loses at most that much of its history)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from strata.services.efs import limits as lim
from strata.services.efs.throughput import INITIAL_CREDITS, permitted
from strata.services.efs.throughput import unsupported as throughput_unsupported
from strata.services.efs.usage import stored_size

if TYPE_CHECKING:
    from strata.services.efs.throughput import ThroughputLimits
    from strata.storage.metadata import MetadataStore


class ThroughputMixin:
    if TYPE_CHECKING:  # what EFSProvider (and its MountTargetsMixin) give it
        store: MetadataStore
        throughput: ThroughputLimits

        def _mount_targets(self, fs_id: str) -> list[dict]: ...

    def _limit(self, fs_id: str) -> None:
        """Enforce the throughput the file system may drive on its mount targets (or lift it);
        blocking."""
        fs = self.store.get_doc("fs", fs_id)
        if fs is not None:
            self.throughput.apply(fs, self._mount_targets(fs_id), self._standard_bytes(fs_id))

    def _standard_bytes(self, fs_id: str) -> int:
        return int((stored_size(self.store, fs_id) or {}).get("ValueInStandard", lim.EMPTY_SIZE))

    def _settle_credits(self, store_them: bool) -> None:
        """Settle Bursting file systems' burst credits; apply the rate of those whose permitted
        rate changed; with `store_them`, write every balance to its file system's record."""
        bursting = [d for d in self.store.list_docs("fs") if d.get("throughput") == "bursting"]
        changed = self.throughput.settle({d["id"]: self._standard_bytes(d["id"]) for d in bursting})
        for fs_id in changed:
            self._limit(fs_id)
        if not (store_them or changed):
            return
        with self.store.transaction():  # read again inside: a request may have changed the record
            for fs_id, credits in list(self.throughput.credits.items()):
                doc = self.store.get_doc("fs", fs_id)
                if doc is not None and credits != doc.get("burst_credits"):
                    doc["burst_credits"] = credits
                    self.store.put_doc("fs", fs_id, doc)


def throughput_now(efs: ThroughputMixin) -> dict[str, tuple[float | None, float | None]]:
    """Each file system's burst credit balance (Bursting only) and permitted throughput
    (bytes a second; None: not limited), credits settled first; blocking. CloudWatch's
    BurstCreditBalance and PermittedThroughput."""
    efs._settle_credits(False)
    out = {}
    for doc in efs.store.list_docs("fs"):
        credits = efs.throughput.credits.get(doc["id"], doc.get("burst_credits", INITIAL_CREDITS))
        rate = None if throughput_unsupported() else permitted(doc, efs._standard_bytes(doc["id"]), credits)
        out[doc["id"]] = (credits if doc["throughput"] == "bursting" else None, rate)
    return out
