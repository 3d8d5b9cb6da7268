"""Resource documents owned by accounts, for providers whose records predate accounts (RDS, ElastiCache).

Why a store subclass: the providers read and write documents in hundreds of places; scoping each
call by hand would restructure them. Instead the store asks the request's caller account
(`CALLER_SCOPE`, set by the authorizer for every request and inherited by the work a request
spawns) and
- stamps every document it writes with its owner (`account`); documents written before accounts
  existed carry none and belong to the configured default account, so old data stays readable;
- hides other accounts' documents: a get of another account's identifier is None (the provider's
  own NotFound), listings show only the caller's;
- keys the `per_account` kinds by account, so two accounts may use the same name; the default
  account keeps the bare name (old keys). RDS and ElastiCache pass every kind: instances,
  clusters, replication groups and snapshots too. Their engine side (directories, ports,
  endpoint routes, locks) is named by `engine_key(ident)`, which qualifies an identifier by the
  account being served the same way, so account B's "db1" never touches account A's. A name
  stored by another account under the bare key (before engine-backed kinds were per account) is
  refused with the kind's AlreadyExists error (`taken`).
Outside a request (start-up resume, schedulers) the store is unscoped: it sees every document;
work on one document from there runs inside `acting_for(doc)`, in its owner's scope.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from strata.auth.enforce import CALLER_SCOPE
from strata.protocol.errors import ServiceError
from strata.storage.metadata import MetadataStore


class OwnedDocs(MetadataStore):
    def __init__(
        self,
        path: Path,
        *,
        fsync: bool,
        default_account: str,
        per_account: frozenset[str],
        taken: Callable[[str, str], ServiceError],
    ) -> None:
        super().__init__(path, fsync=fsync)
        self.default_account = default_account
        self.per_account = per_account
        self.taken = taken

    def caller(self) -> str | None:
        """The account of the request being served; None outside any request."""
        return CALLER_SCOPE.get()[0] or None

    def owner(self, doc: dict) -> str:
        return doc.get("account") or self.default_account

    def engine_key(self, ident: str) -> str:
        """The name of a resource's engine side (its directory, ports, routes, lock) in the account
        being served: the identifier itself in the default account (as before accounts existed),
        `<account>.<identifier>` in another (a dot is in no RDS or ElastiCache identifier)."""
        account = self.caller()
        if account is None or account == self.default_account:
            return ident
        return f"{account}.{ident}"

    def split_engine_key(self, key: str) -> tuple[str, str]:
        """(owning account, identifier) of an `engine_key`."""
        account, dot, ident = key.partition(".")
        if dot and len(account) == 12 and account.isdigit():
            return account, ident
        return self.default_account, key

    @contextmanager
    def acting_as(self, account: str) -> Iterator[None]:
        """Serve `account` for the duration (background work started outside any request); tasks
        and threads started inside inherit the scope."""
        token = CALLER_SCOPE.set((account, CALLER_SCOPE.get()[1]))
        try:
            yield
        finally:
            CALLER_SCOPE.reset(token)

    def acting_for(self, doc: dict) -> AbstractContextManager[None]:
        """Serve `doc`'s owner for the duration (see `acting_as`)."""
        return self.acting_as(self.owner(doc))

    def _key(self, kind: str, id: str, account: str | None) -> str:
        if kind in self.per_account and account and account != self.default_account:
            return f"{account}:{id}"
        return id

    def _key_of(self, kind: str, id: str, body: dict) -> str:
        return self._key(kind, id, self.caller() or self.owner(body))

    def put_doc(self, kind: str, id: str, body: dict) -> None:
        account = self.caller()
        if account is not None:
            held = super().get_doc(kind, self._key(kind, id, account))
            if held is not None and self.owner(held) != account:
                raise self.taken(kind, id)
            body.setdefault("account", account)
        super().put_doc(kind, self._key_of(kind, id, body), body)

    def get_doc(self, kind: str, id: str) -> dict | None:
        account = self.caller()
        doc = super().get_doc(kind, self._key(kind, id, account))
        if doc is None or (account is not None and self.owner(doc) != account):
            return None
        return doc

    def list_docs(self, kind: str, prefix: str = "") -> list[dict]:
        account = self.caller()
        if account is None:
            return super().list_docs(kind, prefix)
        docs = super().list_docs(kind, self._key(kind, prefix, account) if prefix else "")
        return [d for d in docs if self.owner(d) == account]

    def delete_doc(self, kind: str, id: str) -> bool:
        account = self.caller()
        if account is not None and self.get_doc(kind, id) is None:
            return False
        return super().delete_doc(kind, self._key(kind, id, account))
