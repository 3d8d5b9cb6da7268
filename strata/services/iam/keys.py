"""Access keys of IAM users: at most two per user, Active or Inactive; an inactive or deleted key
is refused on the next request."""

from __future__ import annotations

from strata.auth.directory import new_id, new_secret
from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.iam.core import IAMBase, page, validation, when
from strata.sim.clock import clock

MAX_KEYS_PER_USER = 2


class AccessKeyOperations(IAMBase):
    def _keys_of(self, account: str, user: str) -> list[dict]:
        self.dir.load()
        keys = [
            k for k in self.dir.keys.values() if k["account"] == account and k["user"].lower() == user.lower()
        ]
        return sorted(keys, key=lambda k: k["CreateDate"])

    def create_access_key(self, ctx: RequestContext, req: dict) -> dict:
        user = self._user(ctx, req)
        if not user:
            raise validation("Must specify userName when calling with non-User credentials")
        if len(self._keys_of(ctx.account_id, user["UserName"])) >= MAX_KEYS_PER_USER:
            raise ServiceError(
                "LimitExceeded", f"Cannot exceed quota for AccessKeysPerUser: {MAX_KEYS_PER_USER}", 409
            )
        key = {
            "AccessKeyId": new_id("AKIA", 16),
            "SecretAccessKey": new_secret(),
            "account": ctx.account_id,
            "user": user["UserName"],
            "Status": "Active",
            "CreateDate": clock.time(),
        }
        with self.dir.change():
            self.dir.save("key", key)
        return {"AccessKey": {**self._render(key), "SecretAccessKey": key["SecretAccessKey"]}}

    def list_access_keys(self, ctx: RequestContext, req: dict) -> dict:
        user = self._user(ctx, req)
        if not user:
            return page([], req, "AccessKeyMetadata")
        return page(
            [self._render(k) for k in self._keys_of(ctx.account_id, user["UserName"])],
            req,
            "AccessKeyMetadata",
        )

    def update_access_key(self, ctx: RequestContext, req: dict) -> dict:
        key = self._key(ctx, req)
        status = req.get("Status")
        if status not in ("Active", "Inactive"):
            raise validation(
                f"1 validation error detected: Value '{status}' at 'status' failed to satisfy constraint: "
                "Member must satisfy enum value set: [Active, Inactive]"
            )
        key["Status"] = status
        with self.dir.change():
            self.dir.save("key", key)
        return {}

    def delete_access_key(self, ctx: RequestContext, req: dict) -> dict:
        key = self._key(ctx, req)
        with self.dir.change():
            self.dir.drop("key", key)
        return {}

    def get_access_key_last_used(self, ctx: RequestContext, req: dict) -> dict:
        self.dir.load()
        key = self.dir.keys.get(req.get("AccessKeyId") or "")
        if key is None or key["account"] != ctx.account_id:
            raise ServiceError("AccessDenied", "The specified access key is not valid for this account.", 403)
        return {"UserName": key["user"], "AccessKeyLastUsed": {"ServiceName": "N/A", "Region": "N/A"}}

    def _key(self, ctx: RequestContext, req: dict) -> dict:
        user = self._user(ctx, req)
        key_id = req.get("AccessKeyId")
        for k in self._keys_of(ctx.account_id, user.get("UserName", "")) if user else []:
            if k["AccessKeyId"] == key_id:
                return k
        raise ServiceError("NoSuchEntity", f"The Access Key with id {key_id} cannot be found.", 404)

    @staticmethod
    def _render(key: dict) -> dict:
        return {
            "UserName": key["user"],
            "AccessKeyId": key["AccessKeyId"],
            "Status": key["Status"],
            "CreateDate": when(key["CreateDate"]),
        }
