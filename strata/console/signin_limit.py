"""Backing off failed console sign-ins, per client address.

The sign-in form checks a key pair with an STS call, so without a limit it would be an oracle
for guessing secrets as fast as the server answers. After FREE_FAILURES failed sign-ins from a
client address (with no success between), its next attempt is not even checked for FIRST_WAIT
seconds; each failure after that doubles the wait, up to MAX_WAIT. While it waits,
every sign-in from it (right or wrong) is answered 429 with Retry-After, and such refused
attempts do not lengthen the wait (a person retrying is let in once it passes). One attempt per
address is checked at a time, so parallel guesses cannot outrun the count. A successful sign-in
forgets the address's failures; so does FORGET_AFTER seconds without one.

Time is real monotonic time (strata.sim.clock.monotonic): moving the simulated clock neither
lifts nor lengthens a wait. At most MAX_ADDRESSES addresses are remembered, the least recently
failed forgotten first. The address is the TCP peer's (a proxy in front would make every client
one address: then its own limit is the one to use).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

from strata.sim.clock import clock

FREE_FAILURES = 5
FIRST_WAIT = 4.0
MAX_WAIT = 15 * 60.0
FORGET_AFTER = 3600.0
MAX_ADDRESSES = 10_000


@dataclass
class _Record:
    failures: int = 0
    last_failure: float = 0.0
    until: float = 0.0  # no attempt is checked before this
    checking: bool = False


class SigninLimit:
    """Failed sign-ins per client address, and the wait each address has earned."""

    def __init__(self) -> None:
        self._records: OrderedDict[str, _Record] = OrderedDict()

    def begin(self, address: str) -> int:
        """0 when an attempt from `address` may be checked now (then `end` must follow), else
        the whole seconds it must wait (Retry-After)."""
        now = clock.monotonic()
        record = self._records.get(address)
        if record is not None and now - record.last_failure > FORGET_AFTER and not record.checking:
            del self._records[address]
            record = None
        if record is None:
            record = self._records[address] = _Record()
            while len(self._records) > MAX_ADDRESSES:
                self._records.popitem(last=False)
        if record.checking:
            return 1
        if now < record.until:
            return max(1, math.ceil(record.until - now))
        record.checking = True
        return 0

    def end(self, address: str, succeeded: bool) -> None:
        """The attempt `begin` allowed is over: forget the address, or count its failure."""
        record = self._records.get(address)
        if record is None:
            return
        record.checking = False
        if succeeded:
            del self._records[address]
            return
        now = clock.monotonic()
        record.failures += 1
        record.last_failure = now
        extra = record.failures - FREE_FAILURES
        if extra >= 0:
            record.until = now + min(MAX_WAIT, FIRST_WAIT * 2.0 ** min(extra, 30))
        self._records.move_to_end(address)
