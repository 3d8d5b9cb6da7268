"""Resource documents owned by (account, region), for providers whose records predate accounts and
regions (RDS, ElastiCache).

Why a wrapper of the store: the providers read and write documents in hundreds of places; scoping each
call by hand would restructure them. Instead the store asks the request's caller account
(`CALLER_SCOPE`: account and region, set by the authorizer for every request and inherited by the
work a request spawns) and
- stamps every document it writes with its owner (`account`) and `region`; documents written
  before accounts or regions existed carry none and belong to the configured default account and
  region, so old data stays readable (regions are namespaces, as in AWS: an instance made in
  us-east-1 is not seen from us-west-2);
- hides other scopes' documents: a get of another account's or region's identifier is None (the
  provider's own NotFound), listings show only the caller's;
- keys the `per_account` kinds by scope, so two accounts or regions may use the same name; the
  default scope keeps the bare name (old keys), another account in the default region
  `<account>:<id>` (keys from before regions), any scope in another region
  `<account>:<region>:<id>`. RDS and ElastiCache pass every kind: instances, clusters,
  replication groups and snapshots too. Their engine side (directories, ports, endpoint routes,
  locks) is named by `engine_key(ident)`, which qualifies an identifier by the scope being served
  the same way, so account B's (or region B's) "db1" never touches account A's. A name stored by
  another account under the bare key (before engine-backed kinds were per account) is refused
  with the kind's AlreadyExists error (`taken`).
Outside a request (start-up resume, schedulers) the store is unscoped: it sees every document;
work on one document from there runs inside `acting_for(doc)`, in its owner's scope.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from strata.auth.enforce import CALLER_SCOPE
from strata.protocol.errors import ServiceError


class OwnedDocs:
    """Scoped documents over any metadata store (strata.storage.interface: SQLite or PostgreSQL);
    everything but the documents (transactions, SQL, close) is the store's own."""

    def __init__(
        self,
        docs: Any,
        *,
        default_account: str,
        default_region: str,
        per_account: frozenset[str],
        taken: Callable[[str, str], ServiceError],
    ) -> None:
        self.docs = docs
        self.default_account = default_account
        self.default_region = default_region
        self.per_account = per_account
        self.taken = taken

    def __getattr__(self, name: str) -> Any:
        return getattr(self.docs, name)

    def caller(self) -> str | None:
        """The account of the request being served; None outside any request."""
        return CALLER_SCOPE.get()[0] or None

    def region(self) -> str:
        """The region being served (the default region outside any request)."""
        return CALLER_SCOPE.get()[1] or self.default_region

    def scope(self) -> tuple[str, str] | None:
        """(account, region) being served; None outside any request (unscoped)."""
        account, region = CALLER_SCOPE.get()
        return (account, region or self.default_region) if account else None

    def owner(self, doc: dict) -> str:
        return doc.get("account") or self.default_account

    def region_of(self, doc: dict) -> str:
        return doc.get("region") or self.default_region

    def _scope_of(self, doc: dict) -> tuple[str, str]:
        return self.owner(doc), self.region_of(doc)

    def _qualified(self, scope: tuple[str, str] | None, ident: str, sep: str) -> str:
        if scope is None:
            return ident
        account, region = scope
        if region != self.default_region:
            return f"{account}{sep}{region}{sep}{ident}"
        if account != self.default_account:
            return f"{account}{sep}{ident}"
        return ident

    def engine_key(self, ident: str) -> str:
        """The name of a resource's engine side (its directory, ports, routes, lock) in the scope
        being served: the identifier itself in the default account and region (as before accounts
        existed), `<account>.<identifier>` in another account of the default region,
        `<account>.<region>.<identifier>` in another region (a dot is in no RDS or ElastiCache
        identifier, nor in a region name)."""
        return self._qualified(self.scope(), ident, ".")

    def split_engine_key(self, key: str) -> tuple[str, str, str]:
        """(owning account, region, identifier) of an `engine_key`."""
        parts = key.split(".", 2)
        if len(parts) > 1 and len(parts[0]) == 12 and parts[0].isdigit():
            if len(parts) == 3:
                return parts[0], parts[1], parts[2]
            return parts[0], self.default_region, parts[1]
        return self.default_account, self.default_region, key

    @contextmanager
    def acting_as(self, account: str, region: str | None = None) -> Iterator[None]:
        """Serve `account` in `region` (default: the region being served) for the duration
        (background work started outside any request); tasks and threads started inside inherit
        the scope."""
        token = CALLER_SCOPE.set((account, region or self.region()))
        try:
            yield
        finally:
            CALLER_SCOPE.reset(token)

    def acting_for(self, doc: dict) -> AbstractContextManager[None]:
        """Serve `doc`'s owner in its region for the duration (see `acting_as`)."""
        return self.acting_as(self.owner(doc), self.region_of(doc))

    def _key(self, kind: str, id: str, scope: tuple[str, str] | None) -> str:
        if kind in self.per_account:
            return self._qualified(scope, id, ":")
        return id

    def _key_of(self, kind: str, id: str, body: dict) -> str:
        return self._key(kind, id, self.scope() or self._scope_of(body))

    def put_doc(self, kind: str, id: str, body: dict) -> None:
        scope = self.scope()
        if scope is not None:
            held = self.docs.get_doc(kind, self._key(kind, id, scope))
            if held is not None and self._scope_of(held) != scope:
                raise self.taken(kind, id)
            body.setdefault("account", scope[0])
            body.setdefault("region", scope[1])
        self.docs.put_doc(kind, self._key_of(kind, id, body), body)

    def get_doc(self, kind: str, id: str) -> dict | None:
        scope = self.scope()
        doc = self.docs.get_doc(kind, self._key(kind, id, scope))
        if doc is None or (scope is not None and self._scope_of(doc) != scope):
            return None
        return doc

    def list_docs(self, kind: str, prefix: str = "") -> list[dict]:
        scope = self.scope()
        if scope is None:
            return self.docs.list_docs(kind, prefix)
        docs = self.docs.list_docs(kind, self._key(kind, prefix, scope) if prefix else "")
        return [d for d in docs if self._scope_of(d) == scope]

    def every_scope(self, kind: str) -> list[dict]:
        """Every account's and region's records of `kind` (for what one account shares with
        others, such as RDS snapshots; callers check ownership themselves)."""
        return self.docs.list_docs(kind)

    def delete_doc(self, kind: str, id: str) -> bool:
        scope = self.scope()
        if scope is not None and self.get_doc(kind, id) is None:
            return False
        return self.docs.delete_doc(kind, self._key(kind, id, scope))
