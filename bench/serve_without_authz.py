"""A Strata server whose policy check is skipped, for measuring what authorization costs.

Issue 13 asks that an authorized GetItem/GetObject not get measurably slower. Comparing with a
commit from before authorization existed mixes in everything added since (metering, capacity,
metrics); this measures authorization alone: the same checkout started twice, once as shipped and
once through this launcher, which replaces `Authorizer.check` with a no-op in its own process
before serving. Nothing else differs (SigV4 is still verified: it is authentication, which the
base had too). Drive both with `bench/cpu_per_request.py --callgrind`:

    valgrind --tool=callgrind --instr-atstart=no python -m strata.cli serve --port 4701 ... &
    valgrind --tool=callgrind --instr-atstart=no python bench/serve_without_authz.py \\
        serve --port 4702 ... &
    python bench/cpu_per_request.py --callgrind --target shipped=http://127.0.0.1:4701 \\
        --target skipped=http://127.0.0.1:4702 --seconds 15 --rounds 2

This is a measuring tool, never a way to run Strata: it serves on loopback only and says so.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout this file is in

from strata.auth import enforce  # noqa: E402


def _skip(*_args: object, **_kwargs: object) -> None:
    """Allow everything: the measurement's other side."""


def main() -> None:
    if any(arg in ("--host", "-h") or arg.startswith("--host=") for arg in sys.argv[1:]):
        raise SystemExit("serve_without_authz serves on loopback only: do not give --host")
    print("serve_without_authz: POLICIES ARE NOT CHECKED in this process (a benchmark)", file=sys.stderr)
    enforce.Authorizer.check = _skip  # type: ignore[method-assign]
    from strata.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
