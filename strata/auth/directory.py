"""Who exists and what they may do: accounts, IAM users, groups, roles, managed policies, keys.

One `Directory` per server (`directory_for(settings)`), shared by the SigV4 layer (which key is
whose), the enforcement step (which policies apply to a principal) and the IAM/STS providers (which
change it). State lives in memory and is written through `strata.storage.MetadataStore` (JSON
documents in `<data>/iam/iam.db`), one transaction per IAM change; every change bumps
`generation`, which drops the compiled policy sets cached per principal, so a change takes effect
on the next request.

Keys: the loopback test key, STRATA_ACCESS_KEY_ID and the users file's root keys are account roots
(known without opening the store); IAM users' keys (AKIA…) come from the store; STS session keys
(ASIA…) are verified from their token (`strata.auth.sessions`).
"""

from __future__ import annotations

import base64
import itertools
import json
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from strata.auth import sessions
from strata.auth.evaluator import PolicySet
from strata.auth.policy import Policy, compile_policy
from strata.auth.principal import Principal
from strata.auth.users_file import UsersFile, load_users_file
from strata.config import DEFAULT_ACCESS_KEY, Settings
from strata.sim.clock import clock
from strata.storage.shared import Freshness, open_store

# Generations are unique across directories: a principal holding one directory's policy set
# (Principal.policies) never passes for current in another.
_GENERATIONS = itertools.count(1)

_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
AWS_POLICY_PREFIX = "arn:aws:iam::aws:policy/"


def new_id(prefix: str, length: int = 17) -> str:
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def new_secret() -> str:
    return base64.b64encode(secrets.token_bytes(30)).decode()[:40]


def _load_aws_policies() -> dict[str, dict]:
    raw = json.loads(Path(__file__).with_name("managed_policies.json").read_text())
    out = {}
    for p in raw:
        arn = f"arn:aws:iam::aws:policy{p['Path']}{p['PolicyName']}"
        vid = p.get("VersionId", "v1")  # AWS's current default version of the policy
        out[arn] = {
            "PolicyName": p["PolicyName"],
            "PolicyId": p["PolicyId"],
            "Arn": arn,
            "Path": p["Path"],
            "Description": p["Description"],
            "default": vid,
            "versions": {vid: {"doc": json.dumps(p["Document"]), "created": 1420070400.0}},
            "CreateDate": 1420070400.0,
            "UpdateDate": 1420070400.0,
            "aws": True,
        }
    return out


AWS_POLICIES: dict[str, dict] = _load_aws_policies()


class CredentialProblem(Exception):
    """An access key or session token Strata cannot accept; `kind` picks the service's error."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind  # unknown_key | expired_token | bad_token


class HeldPolicies:
    """A principal's compiled identity side at one IAM generation, with its decision cache and
    how strata.auth.enforce remembers its decisions (`mode`: None until the enforcer worked it
    out), held on the principal so an authorized request finds them without a lookup."""

    __slots__ = ("generation", "policies", "decisions", "mode")

    def __init__(self, generation: int, policies: PolicySet) -> None:
        self.generation = generation
        self.policies = policies
        self.decisions: dict = {}
        self.mode: int | None = None


class Directory:
    """Accounts, identities, policies and keys; see the module docstring."""

    KINDS = ("user", "group", "role", "instance_profile", "policy", "key")

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.file: UsersFile | None = load_users_file(settings.users_file) if settings.users_file else None
        self.roots: dict[str, tuple[str, str]] = {}  # access key -> (secret, account)
        for key, secret in settings.all_credentials().items():
            self.roots[key] = (secret, settings.account_id)
        # The server's own keys (the loopback test key, STRATA_ACCESS_KEY_ID) are roots of the
        # default account that, unlike an AWS root (a users file's root key), may assume roles.
        self.operator_keys = set(self.roots)
        self.accounts = {settings.account_id}
        if self.file is not None:
            for acct in self.file.accounts.values():
                self.accounts.add(acct.account_id)
                if acct.root_key and acct.root_secret:
                    self.roots[acct.root_key] = (acct.root_secret, acct.account_id)
                    self.operator_keys.discard(acct.root_key)
        # with one account every resource is the caller's: the authorizer need not ask for owners
        self.several_accounts = len(self.accounts) > 1
        self.generation = next(_GENERATIONS)
        self.users: dict[tuple[str, str], dict] = {}
        self.groups: dict[tuple[str, str], dict] = {}
        self.roles: dict[tuple[str, str], dict] = {}
        self.instance_profiles: dict[tuple[str, str], dict] = {}
        self.policies: dict[str, dict] = {}  # customer managed, by ARN
        self.keys: dict[str, dict] = {}
        self._db: Any = None  # the store (strata.storage.interface.MetadataBackend)
        self._fresh: Freshness | None = None
        # other gateways change this directory too (its store is PostgreSQL)
        self.shared = settings.metadata is not None
        self._loaded = False
        self._lock = threading.RLock()
        self._server_key: bytes | None = None
        self._principals: dict[str, tuple[int, str, Principal]] = {}
        self._sessions: dict[str, tuple[str, Principal, float]] = {}
        self._sets: dict[tuple[str, str], HeldPolicies] = {}
        self.session_accounts: dict[str, str] = {}  # ASIA key -> account, for GetAccessKeyInfo

    # ---- storage ------------------------------------------------------------------------------

    @property
    def db(self) -> Any:
        if self._db is None:
            self._db = open_store(
                self.settings.service_dir("iam") / "iam.db",
                "iam",
                url=self.settings.metadata,
                fsync=self.settings.fsync,
            )
        return self._db

    def load(self) -> None:
        """Read the stored state and make the users file's users present (once); with several
        gateways (PostgreSQL), read it again whenever another gateway changed it."""
        if self._loaded:
            if self.shared:
                self._follow()
            return
        with self._lock:
            if self._loaded:
                return
            self._fresh = Freshness(self.db, "iam")
            self._read_all()
            meta = self.db.get_doc("meta", "session-key")
            if meta is None:
                meta = {"key": base64.b64encode(secrets.token_bytes(32)).decode()}
                with self.db.transaction():  # two gateways starting at once make one key
                    if self.db.get_doc("meta", "session-key") is None:
                        self.db.put_doc("meta", "session-key", meta)
                meta = self.db.get_doc("meta", "session-key")
            self._server_key = base64.b64decode(meta["key"])
            self._loaded = True
            self._apply_users_file()

    def _follow(self) -> None:
        """Read everything again if another gateway changed IAM since this process last read it
        (one indexed read when nothing changed): a key deleted or a policy detached through another
        gateway is refused here on the next request."""
        assert self._fresh is not None
        with self._lock:
            self._apply(self._fetch())

    async def follow(self) -> None:
        """`_follow` for a request about to be authenticated, with its reads in the store's read
        threads (the event loop serves others meanwhile); the request's own look-ups then trust
        the check (`Freshness.checked`). Called when `needs_follow`."""
        fresh = self._fresh
        assert fresh is not None
        fetched = await self.db.read(self._fetch)
        with self._lock:
            self._apply(fetched)
        fresh.checked()

    def needs_follow(self, request: Any) -> bool:
        """Whether a request's authentication may read the store (several gateways): not when it
        is signed with an account root's key, known without the store (a best guess from the
        Authorization header or X-Amz-Credential; unsure: True, and the check is made)."""
        if not self.shared or self._fresh is None:
            return False
        auth = request.headers.get("authorization") or ""
        i = auth.find("Credential=")
        if i >= 0:
            key = auth[i + 11 : auth.find("/", i)]
        elif auth:
            return True  # another scheme (SigV2)
        elif request.query_string:
            query = request.query_dict()
            key = query.get("X-Amz-Credential", "").partition("/")[0] or query.get("AWSAccessKeyId", "")
        else:
            key = ""
        return bool(key) and key not in self.roots  # no key: unsigned, nothing to look up

    def _fetch(self) -> tuple[int, dict[str, list[dict]]] | None:
        """The stored counter and every document, if another gateway changed IAM; else None.
        Reads only (it may run in a read thread): `_apply` makes them this process's state."""
        assert self._fresh is not None
        stored = self._fresh.changed()
        if stored is None:
            return None
        return stored, {kind: self.db.list_docs(kind) for kind in (*_NAME, "policy", "key")}

    def _apply(self, fetched: tuple[int, dict[str, list[dict]]] | None) -> None:
        if fetched is None:
            return
        stored, docs = fetched
        self._read_all(docs)
        assert self._fresh is not None
        self._fresh.seen = stored
        self.generation = next(_GENERATIONS)
        self._principals.clear()
        self._sets.clear()

    def _read_all(self, docs: dict[str, list[dict]] | None = None) -> None:
        """Make the stored documents (`docs`, or read now) the directory's state; each table is
        replaced whole, so a reader on another thread sees the old one or the new one."""
        if docs is None:
            docs = {kind: self.db.list_docs(kind) for kind in (*_NAME, "policy", "key")}
        for kind in _NAME:
            setattr(
                self,
                _TABLES[kind],
                {(doc["account"], doc[_NAME[kind]].lower()): doc for doc in docs[kind]},
            )
        self.policies = {doc["Arn"]: doc for doc in docs["policy"]}
        self.keys = {doc["AccessKeyId"]: doc for doc in docs["key"]}

    def close(self) -> None:
        if self._db is not None:
            self._db.close()

    @contextmanager
    def change(self) -> Iterator[None]:
        """One IAM change: its documents commit together, then caches are dropped."""
        self.load()
        with self._lock, self.db.transaction():
            if self.shared:
                self._follow()  # under the store's lock: another gateway's change is read first
            yield
            assert self._fresh is not None
            self._fresh.bump()
        self.generation = next(_GENERATIONS)
        self._principals.clear()
        self._sets.clear()

    def save(self, kind: str, doc: dict) -> None:
        """Record a user/group/role/instance profile/policy/key document (call inside `change()`)."""
        if kind == "policy":
            self.policies[doc["Arn"]] = doc
            self.db.put_doc(kind, doc["Arn"], doc)
        elif kind == "key":
            self.keys[doc["AccessKeyId"]] = doc
            self.db.put_doc(kind, doc["AccessKeyId"], doc)
        else:
            key = (doc["account"], doc[_NAME[kind]].lower())
            self._table(kind)[key] = doc
            self.db.put_doc(kind, f"{key[0]}/{key[1]}", doc)

    def drop(self, kind: str, doc: dict) -> None:
        if kind == "policy":
            self.policies.pop(doc["Arn"], None)
            self.db.delete_doc(kind, doc["Arn"])
        elif kind == "key":
            self.keys.pop(doc["AccessKeyId"], None)
            self.db.delete_doc(kind, doc["AccessKeyId"])
        else:
            key = (doc["account"], doc[_NAME[kind]].lower())
            self._table(kind).pop(key, None)
            self.db.delete_doc(kind, f"{key[0]}/{key[1]}")

    def _table(self, kind: str) -> dict[tuple[str, str], dict]:
        return {
            "user": self.users,
            "group": self.groups,
            "role": self.roles,
            "instance_profile": self.instance_profiles,
        }[kind]

    def find(self, kind: str, account: str, name: str) -> dict | None:
        self.load()
        return self._table(kind).get((account, name.lower()))

    def listing(self, kind: str, account: str) -> list[dict]:
        self.load()
        return sorted(
            (d for (a, _), d in self._table(kind).items() if a == account),
            key=lambda d: d[_NAME[kind]].lower(),
        )

    def managed_policy(self, arn: str) -> dict | None:
        if arn.startswith(AWS_POLICY_PREFIX):
            return AWS_POLICIES.get(arn)
        self.load()
        return self.policies.get(arn)

    @property
    def server_key(self) -> bytes:
        self.load()
        assert self._server_key is not None
        return self._server_key

    # ---- the users file -----------------------------------------------------------------------

    def _apply_users_file(self) -> None:
        if self.file is None:
            return
        now = clock.time()
        with self.db.transaction():
            for acct in self.file.accounts.values():
                for fu in acct.users.values():
                    user = self.users.get((acct.account_id, fu.name.lower()))
                    if user is None:
                        user = new_user_doc(acct.account_id, fu.name, fu.path, now)
                    for arn in fu.policies:
                        if arn not in user["attached"]:
                            user["attached"].append(arn)
                    if fu.permissions_boundary:
                        user["boundary"] = fu.permissions_boundary
                    for g in fu.groups:
                        if (acct.account_id, g.lower()) not in self.groups:
                            self.save("group", new_group_doc(acct.account_id, g, "/", now))
                        if g not in user["groups"]:
                            user["groups"].append(g)
                    self.save("user", user)
                    key = self.keys.get(fu.access_key)
                    if key is None or key["SecretAccessKey"] != fu.secret_key:
                        self.save(
                            "key",
                            {
                                "AccessKeyId": fu.access_key,
                                "SecretAccessKey": fu.secret_key,
                                "account": acct.account_id,
                                "user": fu.name,
                                "Status": "Active",
                                "CreateDate": now,
                            },
                        )
            assert self._fresh is not None
            self._fresh.bump()

    # ---- credentials --------------------------------------------------------------------------

    def credential(self, access_key: str, token: str | None) -> tuple[str, Principal]:
        """(secret, principal) of an access key; raises CredentialProblem."""
        if self.shared and access_key not in self.roots:
            self.load()  # reads again what another gateway changed, before any cache is trusted
        cached = self._principals.get(access_key)
        if cached is not None and cached[0] == self.generation:  # (an IAM change clears them all)
            return cached[1], cached[2]
        root = self.roots.get(access_key)
        if root is not None:
            secret, account = root
            principal = Principal(access_key, account, f"arn:aws:iam::{account}:root", account)
            self._principals[access_key] = (self.generation, secret, principal)
            return secret, principal
        if access_key.startswith("ASIA"):
            return self._session_credential(access_key, token)
        if (
            not self._loaded
            and self.file is None
            and not self.shared
            and not (self.settings.data_dir / "iam" / "iam.db").exists()
        ):
            raise CredentialProblem("unknown_key")  # nothing stored yet: no IAM keys exist
        self.load()
        key = self.keys.get(access_key)
        if key is None or key["Status"] != "Active":
            raise CredentialProblem("unknown_key")
        user = self.users.get((key["account"], key["user"].lower()))
        if user is None:
            raise CredentialProblem("unknown_key")
        principal = user_principal(user, access_key)
        self._principals[access_key] = (self.generation, key["SecretAccessKey"], principal)
        return key["SecretAccessKey"], principal

    def _session_credential(self, access_key: str, token: str | None) -> tuple[str, Principal]:
        if not token:
            raise CredentialProblem("unknown_key")
        cached = self._sessions.get(token)
        if cached is None:
            facts = sessions.read_token(self.server_key, token)
            if facts is None or facts.get("ak") != access_key:
                raise CredentialProblem("bad_token")
            principal = Principal(
                access_key,
                facts["acct"],
                facts["arn"],
                facts["uid"],
                facts["kind"],
                facts.get("name", ""),
                facts.get("role", ""),
                facts["kind"] == "root",
                facts,
                dict(facts.get("tags") or {}),
            )
            if len(self._sessions) > 4096:
                self._sessions.clear()
            cached = self._sessions[token] = (
                sessions.session_secret(self.server_key, access_key),
                principal,
                float(facts["exp"]),
            )
        elif cached[1].access_key != access_key:
            raise CredentialProblem("bad_token")
        if clock.time() >= cached[2]:
            raise CredentialProblem("expired_token")
        return cached[0], cached[1]

    # ---- policies of a principal --------------------------------------------------------------

    def policy_set(self, principal: Principal) -> tuple[PolicySet, dict]:
        """The compiled identity side of a principal and its decision cache (both dropped on any
        IAM change)."""
        held = principal.policies
        if held is None or held.generation != self.generation:
            session = principal.session
            cache_key = (principal.arn, session["ak"] if session else "")
            held = self._sets.get(cache_key)
            if held is None or held.generation != self.generation:
                self.load()
                held = HeldPolicies(self.generation, self._build_set(principal))
                if len(self._sets) > 4096:
                    self._sets.clear()
                self._sets[cache_key] = held
            principal.policies = held
        return held.policies, held.decisions

    def _build_set(self, principal: Principal) -> PolicySet:
        session = principal.session or {}
        session_policies: tuple[Policy, ...] | None = None
        texts = list(session.get("pol") or []) + [
            d for d in (self.policy_text(a) for a in session.get("parns") or []) if d
        ]
        if texts:
            session_policies = tuple(compile_policy(t) for t in texts)
        if principal.kind == "root":
            return PolicySet(unrestricted=True, session=None)
        if principal.kind == "user":
            owner = self.users.get((principal.account_id, principal.name.lower()))
        elif principal.kind == "assumed-role":
            owner = self.roles.get((principal.account_id, principal.role_arn.rsplit("/", 1)[-1].lower()))
        else:
            owner = None
        if owner is None:
            return PolicySet(session=session_policies)
        identity = self.identity_texts(owner)
        if principal.kind == "user":
            for g in owner.get("groups", []):
                group = self.groups.get((principal.account_id, g.lower()))
                if group is not None:
                    identity += self.identity_texts(group)
        boundary_text = self.policy_text(owner["boundary"]) if owner.get("boundary") else None
        return PolicySet(
            identity=tuple(compile_policy(t) for t in identity),
            boundary=compile_policy(boundary_text) if boundary_text else None,
            session=session_policies,
        )

    def identity_texts(self, owner: dict) -> list[str]:
        texts = list(owner.get("inline", {}).values())
        texts += [t for t in (self.policy_text(a) for a in owner.get("attached", [])) if t]
        return texts

    def policy_text(self, arn: str) -> str | None:
        policy = self.managed_policy(arn)
        if policy is None:
            return None
        return policy["versions"][policy["default"]]["doc"]


_NAME = {
    "user": "UserName",
    "group": "GroupName",
    "role": "RoleName",
    "instance_profile": "InstanceProfileName",
}
_TABLES = {"user": "users", "group": "groups", "role": "roles", "instance_profile": "instance_profiles"}


def user_principal(user: dict, access_key: str) -> Principal:
    tags = {t["Key"]: t["Value"] for t in user.get("Tags") or []}
    return Principal(
        access_key,
        user["account"],
        user["Arn"],
        user["UserId"],
        "user",
        user["UserName"],
        "",
        False,
        None,
        tags,
    )


def new_user_doc(account: str, name: str, path: str, now: float) -> dict:
    return {
        "account": account,
        "UserName": name,
        "UserId": new_id("AIDA"),
        "Path": path,
        "Arn": f"arn:aws:iam::{account}:user{path}{name}",
        "CreateDate": now,
        "inline": {},
        "attached": [],
        "groups": [],
        "boundary": None,
        "Tags": [],
    }


def new_group_doc(account: str, name: str, path: str, now: float) -> dict:
    return {
        "account": account,
        "GroupName": name,
        "GroupId": new_id("AGPA"),
        "Path": path,
        "Arn": f"arn:aws:iam::{account}:group{path}{name}",
        "CreateDate": now,
        "inline": {},
        "attached": [],
    }


_directories: dict[int, Directory] = {}
_dir_lock = threading.Lock()


def directory_for(settings: Settings) -> Directory:
    """The one directory of a server (its settings object): shared by SigV4, POST policies,
    enforcement and the IAM/STS providers."""
    with _dir_lock:
        d = _directories.get(id(settings))
        if d is None or d.settings is not settings:
            d = _directories[id(settings)] = Directory(settings)
        return d


def is_test_key(access_key: str) -> bool:
    return access_key == DEFAULT_ACCESS_KEY
