"""What every provider gets: its runtime (settings, data directory) and a per-request context.

A provider is a plain class with one method per AWS operation, named like the operation in
snake_case (`put_object`, `create_db_instance`). Each takes `(ctx, req)` where `req` is a dict
shaped like the operation's input shape, and returns a dict shaped like its output shape (or
awaits and returns one). Providers raise `ServiceError`; they never see HTTP or wire formats.
Optional hooks: `async start()` / `async stop()` around the server's life, `health()` for
`/_strata/health`; for authorization (strata.auth.enforce) `resource_account(req)` (the account
owning the named resource), `resource_arn(req, arn)` (the exact ARN when the table's lacks a
path), `resource_policy(req)` (its compiled resource policy) and `related_requests(operation,
req)` (other resources the request reads, each authorized as a request of its own).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from strata.config import Settings
from strata.protocol.http import HttpRequest

T = TypeVar("T")


@dataclass
class Principal:
    """Who signed the request.

    `kind` is "root" (an account's root key, or the loopback test key), "user" (an IAM user's
    key) or "assumed-role" (an STS session; `role_arn` is the role). `unrestricted` principals
    (root, the test key) skip identity-policy evaluation: the fast path. `session` holds an STS
    session's facts (expiry, session policies, source) when the key is temporary.
    """

    access_key: str
    account_id: str
    arn: str
    user_id: str = ""
    kind: str = "root"
    name: str = ""
    role_arn: str = ""
    unrestricted: bool = True
    session: dict[str, Any] | None = None
    tags: dict[str, str] = field(default_factory=dict)  # aws:PrincipalTag/<key>


# The principal of an unsigned S3 request: no account, no identity policies (strata.auth.enforce
# allows it only what a resource policy grants everyone).
ANONYMOUS = Principal(access_key="", account_id="", arn="anonymous", kind="anonymous", unrestricted=False)


@dataclass
class ServiceRuntime:
    name: str
    settings: Settings
    data_dir: Path
    # Another service's provider by name (None when it is not running): how EC2 asks KMS for data
    # keys without going through HTTP. Resolved at call time, so construction order does not matter.
    peer: Callable[[str], Any] = field(default=lambda name: None)


@dataclass
class RequestContext:
    request_id: str
    service: str
    operation: str
    region: str
    account_id: str
    principal: Principal | None
    # Raw HTTP, for the few operations whose semantics live outside the model (S3 browser POST
    # uploads, virtual-host bucket names). Prefer the parsed request dict.
    http: HttpRequest
    extra: dict[str, Any] = field(default_factory=dict)


async def run_blocking(fn: Callable[..., T], *args: Any) -> T:
    """Run blocking work (big file copies, slow SQL, engine commands) off the event loop, in the
    caller's context (the request's account scope follows the work into the thread)."""
    return await asyncio.get_running_loop().run_in_executor(None, contextvars.copy_context().run, fn, *args)
