"""S3 Control (`s3control`): account-level Block Public Access, Put/Get/DeletePublicAccessBlock;
access points and their policies (access_points.py).

Requests are signed for `s3` and sent to `https://<account-id>.s3-control.<region>.amazonaws.com`
with paths under `/v20180820/` (the gateway routes them here by that path; with an endpoint_url
the SDKs put the account id in front of its host: `<account-id>.localhost.localstack.cloud` is
public DNS for 127.0.0.1). The account-level settings apply to every bucket of the account on top
of each bucket's own (strata.services.s3.bpa asks `_public_access_block_of`); unlike a bucket, an
account has no configuration until one is put.
"""

from __future__ import annotations

import json

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.base import ServiceRuntime
from strata.services.parameters import refusing
from strata.services.s3.bpa import SETTINGS
from strata.services.s3control.access_points import SCHEMA as ACCESS_POINTS_SCHEMA
from strata.services.s3control.access_points import AccessPointOperations
from strata.sim.meter import meter
from strata.storage.shared import Freshness, open_store

SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS public_access_block (
    account TEXT PRIMARY KEY,
    config TEXT NOT NULL
) WITHOUT ROWID;
"""
    + ACCESS_POINTS_SCHEMA
)


def _no_configuration(account: str) -> ServiceError:
    return ServiceError(
        "NoSuchPublicAccessBlockConfiguration",
        "The public access block configuration was not found",
        404,
        fields={"AccountId": account},
    )


@refusing("s3control")
class S3ControlProvider(AccessPointOperations):
    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime
        runtime.data_dir.mkdir(parents=True, exist_ok=True)
        settings = runtime.settings
        self.store = open_store(
            runtime.data_dir / "s3control.db",
            "s3control",
            url=settings.metadata,
            fsync=settings.fsync,
            schema=SCHEMA,
        )
        # Read on S3's policy path: kept in memory, written through; with several gateways
        # (PostgreSQL) read again whenever another changed them (`_current`).
        self._changes = Freshness(self.store, "s3control")
        self._load()

    def _load(self) -> None:
        self._blocks: dict[str, dict[str, bool]] = {
            row[0]: json.loads(row[1])
            for row in self.store.query("SELECT account, config FROM public_access_block")
        }
        self._load_access_points()

    def _current(self) -> None:
        """Read the settings again if another gateway changed them (nothing on SQLite)."""
        stored = self._changes.changed()
        if stored is not None:
            self._load()
            self._changes.seen = stored

    async def stop(self) -> None:
        self.store.close()

    def health(self) -> str:
        self.store.query_one("SELECT 1")
        return "ok"

    def _public_access_block_of(self, account: str) -> dict[str, bool] | None:
        """The account's settings (None: no configuration); asked by the S3 provider."""
        self._current()
        return self._blocks.get(account)

    def _account(self, ctx: RequestContext, req: dict) -> str:
        meter.record("s3control", ctx.operation, 1, "request")
        account = req.get("AccountId") or ""
        if account != ctx.account_id:
            raise ServiceError("AccessDenied", "Access Denied", 403)
        return account

    async def put_public_access_block(self, ctx: RequestContext, req: dict) -> dict:
        account = self._account(ctx, req)
        given = req.get("PublicAccessBlockConfiguration") or {}
        block = {k: bool(given.get(k, False)) for k in SETTINGS}

        def write() -> None:
            self.store.execute(
                "INSERT INTO public_access_block(account, config) VALUES (?, ?)"
                " ON CONFLICT(account) DO UPDATE SET config = excluded.config",
                (account, json.dumps(block)),
            )
            self._changes.bump()

        await self.store.write(write)
        self._blocks[account] = block
        return {}

    def get_public_access_block(self, ctx: RequestContext, req: dict) -> dict:
        account = self._account(ctx, req)
        self._current()
        block = self._blocks.get(account)
        if block is None:
            raise _no_configuration(account)
        return {"PublicAccessBlockConfiguration": dict(block)}

    async def delete_public_access_block(self, ctx: RequestContext, req: dict) -> dict:
        account = self._account(ctx, req)

        def write() -> None:
            self.store.execute("DELETE FROM public_access_block WHERE account = ?", (account,))
            self._changes.bump()

        await self.store.write(write)
        self._blocks.pop(account, None)
        return {}
