"""What every provider gets: its runtime (settings, data directory) and `run_blocking`.

A provider is a plain class with one method per AWS operation, named like the operation in
snake_case (`put_object`, `create_db_instance`). Each takes `(ctx, req)` where `req` is a dict
shaped like the operation's input shape, and returns a dict shaped like its output shape (or
awaits and returns one). Providers raise `ServiceError`; they never see HTTP or wire formats.
Optional hooks: `async start()` / `async stop()` around the server's life, `health()` for
`/_strata/health`; for authorization (strata.auth.enforce) `resource_account(req)` (the account
owning the named resource), `resource_arn(req, arn)` (the exact ARN when the table's lacks a
path), `resource_policy(req)` (its compiled resource policy), `further_resources(req)` (a second
resource the operation acts on, with its own action and policy: KMS ReEncrypt's destination key)
`related_requests(operation, req)` (other resources the request reads, each authorized as a
request of its own) and `request_targets(operation, req, region, account)` (the (action, ARN)
pairs when the request's content decides them: DynamoDB PartiQL statements). The per-request context is strata.context.RequestContext; who signed the request,
strata.auth.principal.Principal (both re-exported here for code written before the move).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from strata.auth.principal import Principal
from strata.config import Settings
from strata.context import RequestContext

T = TypeVar("T")


@dataclass
class ServiceRuntime:
    name: str
    settings: Settings
    data_dir: Path
    # Another service's provider by name (None when it is not running): how EC2 asks KMS for data
    # keys without going through HTTP. Resolved at call time, so construction order does not matter.
    peer: Callable[[str], Any] = field(default=lambda name: None)


async def run_blocking(fn: Callable[..., T], *args: Any) -> T:
    """Run blocking work (big file copies, slow SQL, engine commands) off the event loop, in the
    caller's context (the request's account scope follows the work into the thread)."""
    return await asyncio.get_running_loop().run_in_executor(None, contextvars.copy_context().run, fn, *args)


__all__ = ["Principal", "RequestContext", "ServiceRuntime", "run_blocking"]
