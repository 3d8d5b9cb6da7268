"""Which region names a credential scope may carry: the ones AWS's partitions define.

Strata serves every region on one endpoint (the region in the signature scope selects the
namespace), but only a name AWS could have: one matching a partition's `regionRegex` in
botocore's `partitions.json` (us-east-1, eu-west-3, cn-north-1, us-gov-west-1, ...), no longer
than any real region name could be, or the region Strata was configured with. Anything else is
refused before the name reaches a table key, a log line or an ARN.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import botocore

MAX_REGION_LENGTH = 32  # the longest region AWS names is half of this


@cache
def _patterns() -> tuple[re.Pattern[str], ...]:
    data = json.loads((Path(botocore.__file__).parent / "data" / "partitions.json").read_text())
    return tuple(re.compile(p["regionRegex"], re.ASCII) for p in data["partitions"])


def valid_region(name: str, configured: str) -> bool:
    """Whether `name` may be the region of a signature scope."""
    if name == configured:
        return True
    if not name or len(name) > MAX_REGION_LENGTH or not name.isascii():
        return False
    return any(p.fullmatch(name) for p in _patterns())
