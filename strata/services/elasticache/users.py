"""ElastiCache RBAC: users, user groups, and their access strings enforced as Redis ACLs.

Records: `user` (name, access string, SHA-256 of its passwords, never the passwords) and
`user_group` (its user ids). A replication group using user groups (`user_groups`) keeps the
resolved `user` lines of all their users in `acl` (acl.py); every node of it is built with them
(nodes.py -> RedisNodeConfig.acl_users), so restarts, failovers and new nodes apply them, and a
change to a user, a group's membership or a replication group's user groups is applied to the
running nodes at once (`_apply_acl`: ACL SETUSER / ACL DELUSER).

Every account and region has the built-in user `default` (`on ~* +@all`, no password), which
cannot be modified or deleted; a user group must hold a user named "default" (this one or another
user with that name), as on ElastiCache.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from strata.context import RequestContext
from strata.engines import redis as redis_engine
from strata.services.base import run_blocking
from strata.services.elasticache import acl, events
from strata.services.elasticache import validate as v
from strata.services.elasticache.core import ElastiCacheCore, paginate
from strata.services.elasticache.errors import combination, fault, invalid
from strata.services.elasticache.render import arn

if TYPE_CHECKING:
    from strata.services.elasticache.provider import ElastiCacheProvider

MIN_VERSION = "6.0"
MAX_PASSWORDS = 2
BUILT_IN = {
    "id": "default",
    "name": "default",
    "engine": "redis",
    "access": "on ~* +@all",
    "nopass": True,
    "hashes": [],
}


def _authentication(req: dict, required: bool) -> dict | None:
    """{nopass, hashes} from Passwords / NoPasswordRequired / AuthenticationMode (None: unchanged)."""
    mode = req.get("AuthenticationMode") or {}
    passwords = req.get("Passwords")
    nopass = req.get("NoPasswordRequired")
    if mode:
        kind = mode.get("Type")
        if kind == "iam":
            raise invalid(
                "IAM authentication is not supported by Strata: use password or no-password-required."
            )
        if kind not in ("password", "no-password-required"):
            raise invalid(f"Invalid AuthenticationMode Type: {kind}")
        if passwords is not None or nopass is not None:
            raise combination("AuthenticationMode cannot be combined with Passwords or NoPasswordRequired.")
        passwords = mode.get("Passwords") if kind == "password" else None
        nopass = kind == "no-password-required"
        if kind == "password" and not passwords:
            raise invalid("Passwords must be provided for AuthenticationMode Type password.")
    if nopass and passwords:
        raise combination("Passwords and NoPasswordRequired cannot both be provided.")
    if not nopass and not passwords:
        if not required and nopass is None:
            return None
        raise invalid("No password or NoPasswordRequired provided for the user.")
    for p in passwords or []:
        if not v._TOKEN.match(p):
            raise invalid(
                "Invalid password provided. Passwords must be 16 to 128 printable characters; the only "
                "permitted special characters are !, &, #, $, ^, <, >, and -."
            )
    if len(passwords or []) > MAX_PASSWORDS:
        raise invalid(f"A user can have at most {MAX_PASSWORDS} passwords.")
    return {"nopass": bool(nopass), "hashes": [acl.password_hash(p) for p in passwords or []]}


def _engine(value: str | None) -> str:
    eng = (value or "").lower()
    if eng not in v.REDIS_LIKE:
        raise invalid(f"Invalid engine: {value}. Users and user groups are for redis and valkey.")
    return eng


class UserOperations(ElastiCacheCore):
    """CreateUser ... DeleteUserGroup, and the ACLs of replication groups (a mixin of the provider)."""

    # -- records -----------------------------------------------------------------------------------

    def _user(self, user_id: str | None) -> dict:
        uid = (user_id or "").lower()
        if uid == "default":
            return dict(BUILT_IN)
        doc = self.store.get_doc("user", uid)
        if doc is None:
            raise fault("UserNotFoundFault", f"User {user_id} not found.")
        return doc

    def _user_group(self, group_id: str | None) -> dict:
        doc = self.store.get_doc("user_group", (group_id or "").lower())
        if doc is None:
            raise fault("UserGroupNotFoundFault", f"User group {group_id} not found.")
        return doc

    def _render_user(self, ctx: RequestContext, user: dict, status: str = "active") -> dict:
        groups = [g["id"] for g in self.store.list_docs("user_group") if user["id"] in g["user_ids"]]
        auth = {"Type": "no-password"} if user.get("nopass") else {"Type": "password"}
        auth["PasswordCount"] = len(user.get("hashes", []))
        return {
            "UserId": user["id"],
            "UserName": user["name"],
            "Status": status,
            "Engine": user["engine"],
            "MinimumEngineVersion": MIN_VERSION,
            "AccessString": user["access"],
            "UserGroupIds": groups,
            "Authentication": auth,
            "ARN": arn(ctx.region, ctx.account_id, "user", user["id"]),
        }

    def _render_user_group(self, ctx: RequestContext, ug: dict, status: str = "active") -> dict:
        using = [g["id"] for g in self.store.list_docs("group") if ug["id"] in (g.get("user_groups") or [])]
        return {
            "UserGroupId": ug["id"],
            "Status": status,
            "Engine": ug["engine"],
            "UserIds": list(ug["user_ids"]),
            "MinimumEngineVersion": MIN_VERSION,
            "PendingChanges": {},
            "ReplicationGroups": using,
            "ServerlessCaches": [
                d["id"] for d in self.store.list_docs("serverless") if d.get("user_group") == ug["id"]
            ],
            "ARN": arn(ctx.region, ctx.account_id, "usergroup", ug["id"]),
        }

    # -- users -------------------------------------------------------------------------------------

    def create_user(self, ctx: RequestContext, req: dict) -> dict:
        uid = v.identifier(req.get("UserId"), "UserId", 40)
        name = req.get("UserName") or ""
        if not name or len(name) > 120 or any(c.isspace() for c in name):
            raise invalid(f"Invalid UserName: {name}")
        if name == redis_engine.ADMIN_USER:
            raise invalid(f"The user name {name} is reserved.")
        if uid == "default" or self.store.get_doc("user", uid) is not None:
            raise fault("UserAlreadyExistsFault", f"User {uid} already exists.")
        access = " ".join(acl.access_rules(req.get("AccessString")))
        user = {
            "id": uid,
            "name": name,
            "engine": _engine(req.get("Engine")),
            "access": access,
            "tags": v.tags(req.get("Tags")),
            **(_authentication(req, required=True) or {}),
        }
        self.store.put_doc("user", uid, user)
        events.record(self.store, uid, "user", f"User {uid} created")
        return self._render_user(ctx, user)

    def describe_users(self, ctx: RequestContext, req: dict) -> dict:
        if req.get("UserId"):
            users = [self._user(req["UserId"])]
        else:
            users = [dict(BUILT_IN), *self.store.list_docs("user")]
        if req.get("Engine"):
            users = [u for u in users if u["engine"] == req["Engine"].lower()]
        page, marker = paginate(sorted(users, key=lambda u: u["id"]), req)
        out: dict = {"Users": [self._render_user(ctx, u) for u in page]}
        if marker:
            out["Marker"] = marker
        return out

    async def modify_user(self, ctx: RequestContext, req: dict) -> dict:
        user = self._user(req.get("UserId"))
        if user["id"] == "default":
            raise invalid("The default user cannot be modified; create a user named default instead.")
        if req.get("AccessString") is not None and req.get("AppendAccessString") is not None:
            raise combination("AccessString and AppendAccessString cannot both be provided.")
        if req.get("Engine") is not None:
            user["engine"] = _engine(req["Engine"])
        if req.get("AccessString") is not None:
            user["access"] = " ".join(acl.access_rules(req["AccessString"]))
        if req.get("AppendAccessString") is not None:
            user["access"] = " ".join([user["access"], *acl.access_rules(req["AppendAccessString"])])
        user.update(_authentication(req, required=False) or {})
        self.store.put_doc("user", user["id"], user)
        await self._reapply(user_id=user["id"])
        events.record(self.store, user["id"], "user", f"User {user['id']} modified")
        return self._render_user(ctx, user, "modifying")

    async def delete_user(self, ctx: RequestContext, req: dict) -> dict:
        user = self._user(req.get("UserId"))
        if user["id"] == "default":
            raise invalid("The default user cannot be deleted.")
        holding = [g for g in self.store.list_docs("user_group") if user["id"] in g["user_ids"]]
        if user["name"] == "default" and holding:
            raise fault(
                "DefaultUserAssociatedToUserGroupFault",
                f"User {user['id']} is the default user of user group {holding[0]['id']}.",
            )
        rendered = self._render_user(ctx, user, "deleting")
        for ug in holding:  # AWS: the user leaves every user group, and so every replication group
            ug["user_ids"] = [u for u in ug["user_ids"] if u != user["id"]]
            self.store.put_doc("user_group", ug["id"], ug)
        self.store.delete_doc("user", user["id"])
        await self._reapply(group_ids=[ug["id"] for ug in holding])
        events.record(self.store, user["id"], "user", f"User {user['id']} deleted")
        for ug in holding:
            events.record(
                self.store, ug["id"], "user-group", f"User {user['id']} removed from user group {ug['id']}"
            )
        return rendered

    # -- user groups -------------------------------------------------------------------------------

    def _group_members(self, user_ids: list[str]) -> list[dict]:
        """The users of a group, checked: they exist, one is named default, no name twice."""
        users = [self._user(u) for u in dict.fromkeys(u.lower() for u in user_ids)]
        names = [u["name"] for u in users]
        if "default" not in names:
            raise fault("DefaultUserRequired", "A user group must contain a user named default.")
        if len(set(names)) != len(names):
            raise fault("DuplicateUserNameFault", "A user group cannot hold two users of the same name.")
        return users

    def create_user_group(self, ctx: RequestContext, req: dict) -> dict:
        gid = v.identifier(req.get("UserGroupId"), "UserGroupId", 40)
        if self.store.get_doc("user_group", gid) is not None:
            raise fault("UserGroupAlreadyExistsFault", f"User group {gid} already exists.")
        users = self._group_members(req.get("UserIds") or [])
        ug = {
            "id": gid,
            "engine": _engine(req.get("Engine")),
            "user_ids": [u["id"] for u in users],
            "tags": v.tags(req.get("Tags")),
        }
        self.store.put_doc("user_group", gid, ug)
        events.record(self.store, gid, "user-group", f"User group {gid} created")
        return self._render_user_group(ctx, ug, "creating")

    def describe_user_groups(self, ctx: RequestContext, req: dict) -> dict:
        if req.get("UserGroupId"):
            groups = [self._user_group(req["UserGroupId"])]
        else:
            groups = self.store.list_docs("user_group")
        page, marker = paginate(sorted(groups, key=lambda g: g["id"]), req)
        out: dict = {"UserGroups": [self._render_user_group(ctx, g) for g in page]}
        if marker:
            out["Marker"] = marker
        return out

    async def modify_user_group(self, ctx: RequestContext, req: dict) -> dict:
        ug = self._user_group(req.get("UserGroupId"))
        add = [u.lower() for u in req.get("UserIdsToAdd") or []]
        remove = {u.lower() for u in req.get("UserIdsToRemove") or []}
        if not add and not remove:
            raise invalid("At least one of UserIdsToAdd and UserIdsToRemove must be provided.")
        if remove & set(add):
            raise combination("A user cannot be both added and removed.")
        for uid in remove:
            self._user(uid)
        users = self._group_members([u for u in ug["user_ids"] if u not in remove] + add)
        ug["user_ids"] = [u["id"] for u in users]
        if req.get("Engine") is not None:
            ug["engine"] = _engine(req["Engine"])
        self.store.put_doc("user_group", ug["id"], ug)
        await self._reapply(group_ids=[ug["id"]])
        events.record(self.store, ug["id"], "user-group", f"User group {ug['id']} modified")
        return self._render_user_group(ctx, ug, "modifying")

    def delete_user_group(self, ctx: RequestContext, req: dict) -> dict:
        ug = self._user_group(req.get("UserGroupId"))
        using = [g["id"] for g in self.store.list_docs("group") if ug["id"] in (g.get("user_groups") or [])]
        if using:
            raise fault(
                "InvalidUserGroupStateFault",
                f"User group {ug['id']} is associated with replication group {using[0]}.",
            )
        serving = [d["id"] for d in self.store.list_docs("serverless") if d.get("user_group") == ug["id"]]
        if serving:
            raise fault(
                "InvalidUserGroupStateFault",
                f"User group {ug['id']} is associated with serverless cache {serving[0]}.",
            )
        rendered = self._render_user_group(ctx, ug, "deleting")
        self.store.delete_doc("user_group", ug["id"])
        events.record(self.store, ug["id"], "user-group", f"User group {ug['id']} deleted")
        return rendered

    # -- replication groups' ACLs --------------------------------------------------------------------

    def _user_groups_for(self: ElastiCacheProvider, ids: list[str], group: dict) -> list[str]:
        """UserGroupIds of a replication group, checked against it (transit encryption, engine, AUTH)."""
        found = [self._user_group(i)["id"] for i in dict.fromkeys(ids)]
        if found and not group.get("transit"):
            raise combination("User groups require TransitEncryptionEnabled.")
        if found and group.get("auth"):
            raise combination("User groups cannot be used together with an AUTH token.")
        if found and group["engine"] not in v.REDIS_LIKE:
            raise combination("User groups are only supported for Valkey and Redis OSS engines.")
        return found

    def _acl_lines(self, user_group_ids: list[str]) -> list[str]:
        """The `user` lines of every user of the user groups (the default user's among them)."""
        users: dict[str, dict] = {}
        for gid in user_group_ids:
            ug = self.store.get_doc("user_group", gid)
            for uid in (ug or {}).get("user_ids", []):
                user = dict(BUILT_IN) if uid == "default" else self.store.get_doc("user", uid)
                if user is not None:
                    users.setdefault(user["name"], user)
        return [acl.user_line(u) for u in users.values()]

    async def _reapply(self, *, user_id: str | None = None, group_ids: list[str] | None = None) -> None:
        """Apply the ACLs again on every replication group using the changed user or user groups."""
        if user_id is not None:
            group_ids = [g["id"] for g in self.store.list_docs("user_group") if user_id in g["user_ids"]]
        wanted = set(group_ids or [])
        for dep in self.store.list_docs("group"):
            if wanted & set(dep.get("user_groups") or []):
                await self._set_user_groups(dep["id"], dep["user_groups"])
        await self._reapply_serverless(wanted)  # type: ignore[attr-defined]

    async def _set_user_groups(self, gid: str, user_group_ids: list[str]) -> None:
        """Record a replication group's user groups and their ACL, and apply it to its running nodes."""
        async with self._resource_lock(gid):
            dep = self._group_doc(gid)
            await self._use_user_groups(dep, user_group_ids)
            self.store.put_doc("group", gid, dep)

    async def _use_user_groups(self, dep: dict, user_group_ids: list[str]) -> None:
        """Set `dep`'s user groups and ACL and apply them (the caller holds its lock and saves it)."""
        before = list(dep.get("acl") or [])
        dep["user_groups"] = list(user_group_ids)
        dep["acl"] = self._acl_lines(user_group_ids)
        await run_blocking(self._apply_acl, dep, before)

    def _modified_user_groups(self: ElastiCacheProvider, group: dict, req: dict) -> list[str] | None:
        """The user groups ModifyReplicationGroup asks for (None: unchanged), checked."""
        add = req.get("UserGroupIdsToAdd") or []
        remove = {u.lower() for u in req.get("UserGroupIdsToRemove") or []}
        if not add and not remove and not req.get("RemoveUserGroups"):
            return None
        current = list(group.get("user_groups") or [])
        if req.get("RemoveUserGroups"):
            if add:
                raise combination("RemoveUserGroups cannot be combined with UserGroupIdsToAdd.")
            return []
        for gid in remove:
            if gid not in current:
                raise invalid(f"User group {gid} is not associated with {group['id']}.")
        wanted = [g for g in current if g not in remove] + [
            g.lower() for g in add if g.lower() not in current
        ]
        return self._user_groups_for(wanted, group)

    def _apply_acl(self, dep: dict, before: list[str]) -> None:
        """On every running node: ACL SETUSER the users (Strata's own user first, so its
        connections survive the default user's change), ACL DELUSER the removed ones; with no user
        group left, the default user is open again as before RBAC."""
        after = dep["acl"]
        gone = {line.split()[0] for line in before} - {line.split()[0] for line in after} - {"default"}
        for ng in dep["node_groups"]:
            for cid in ng["members"]:
                server = self.engines.get(cid)
                if isinstance(server, redis_engine.RedisServer) and server.running():
                    _apply_to_node(server, after, gone)


def _apply_to_node(server: redis_engine.RedisServer, after: list[str], gone: set[str]) -> None:
    cfg = server.config
    if after:
        with server.client() as c:  # as whoever Strata logs in as now
            admin = ["on", f"#{acl.password_hash(cfg.admin_token)}", "~*", "&*", "+@all"]
            c.execute_command("ACL", "SETUSER", redis_engine.ADMIN_USER, "reset", *admin)
        cfg.acl_users = list(after)  # from here on Strata logs in as ADMIN_USER
        with server.client() as c:
            for line in after:
                c.execute_command("ACL", "SETUSER", *line.split())
            for name in gone:
                c.execute_command("ACL", "DELUSER", name)
            server.admin(c, "CONFIG", "SET", "masteruser", redis_engine.ADMIN_USER)
            server.admin(c, "CONFIG", "SET", "masterauth", cfg.admin_token)
    else:
        with server.client() as c:
            c.execute_command("ACL", "SETUSER", "default", "reset", "on", "nopass", "~*", "&*", "+@all")
            for name in gone:
                c.execute_command("ACL", "DELUSER", name)
            server.admin(c, "CONFIG", "SET", "masteruser", "")
            server.admin(c, "CONFIG", "SET", "masterauth", "")
        cfg.acl_users = []
        with server.client() as c:  # as the default user
            c.execute_command("ACL", "DELUSER", redis_engine.ADMIN_USER)
    server.write_config()
