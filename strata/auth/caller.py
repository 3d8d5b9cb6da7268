"""What the request being authorized is, for the provider hooks (and providers) that depend on it.

strata.auth.enforce sets it for every request before any hook is asked; tasks and threads started
inside a request inherit it; `CALLER_SCOPE.set/reset` serve an account outside any request
(strata.services.owned_docs).
"""

from __future__ import annotations

import contextvars
from contextvars import ContextVar
from typing import Generic, TypeVar

from strata.auth.principal import Principal

# What the request being authorized is, for provider hooks (and providers) that depend on it: one
# ContextVar holding (caller, operation, account, region), set once per request (one set costs a
# request less than three), read through the three views below (or directly, where a hook on
# every request's path reads it: a view is a Python call).
CALLER_REQUEST: ContextVar[tuple[Principal | None, str, str, str]] = ContextVar(
    "strata_caller_request", default=(None, "", "", "")
)

T = TypeVar("T")


class _View(Generic[T]):
    """Part of the request's facts, read and set like a ContextVar of its own (`set` returns a
    token for `reset`, which restores the facts as they were before that set)."""

    __slots__ = ("_part",)

    def __init__(self, part: int | slice) -> None:
        self._part = part

    def get(self) -> T:
        return CALLER_REQUEST.get()[self._part]  # type: ignore[return-value]

    def set(self, value: T) -> contextvars.Token:
        facts = list(CALLER_REQUEST.get())
        facts[self._part] = value  # type: ignore[index,call-overload]
        return CALLER_REQUEST.set(tuple(facts))  # type: ignore[arg-type]

    def reset(self, token: contextvars.Token) -> None:
        CALLER_REQUEST.reset(token)


# (account, region) of the request being authorized, for provider hooks that resolve names
# relative to the caller (KMS aliases and key ids live in the caller's account and region).
CALLER_SCOPE: _View[tuple[str, str]] = _View(slice(2, 4))
# The operation being authorized, for hooks whose answer depends on it (a KMS grant constrained
# to an encryption context applies only to the operations that carry one).
CALLER_OPERATION: _View[str] = _View(1)
# (caller, operation) of the request being authorized, for resource-policy hooks whose answer
# depends on who asks (S3: Block Public Access's RestrictPublicBuckets, the bucket owner's root
# managing a policy that denies it).
CALLER: _View[tuple[Principal | None, str]] = _View(slice(0, 2))
