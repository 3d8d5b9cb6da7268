"""KMS keys at rest: records, key-id resolution, and the rules that run with the clock.

A key is a JSON document (`kind="key"`, id = the key's UUID) holding its metadata and the sealed
versions of its material, newest last. Aliases (`kind="alias"`, id `account:region:alias/name`)
and grants (`kind="grant"`, id `keyid:grantid`) are documents too. Deletion after the pending
window and automatic rotation are applied when a key is read, from the simulated clock: reading
is the only way to observe either, a 365-day jump gives the same result as 365 one-day steps
(every rotation date is computed from the schedule, not from when it was noticed), and nothing
has to run in the background.
"""

from __future__ import annotations

import base64
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from strata.protocol.errors import ServiceError
from strata.services.kms import material
from strata.services.kms.specs import DEFAULT_ROTATION_DAYS, default_key_policy, managed_key_policy
from strata.sim.clock import clock

_ARN = re.compile(r"^arn:aws[a-z-]*:kms:([a-z0-9-]+):(\d{12}):(key|alias)/(.+)$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
DAY = 86400.0


def not_found(message: str) -> ServiceError:
    return ServiceError("NotFoundException", message, 400)


def key_arn(region: str, account: str, key_id: str) -> str:
    return f"arn:aws:kms:{region}:{account}:key/{key_id}"


def alias_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:kms:{region}:{account}:{name}"


def iso(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _due(doc: dict, now: float) -> bool:
    """Whether the key's deletion, an automatic rotation or its imported material's expiry fell
    due by `now`."""
    imported = doc.get("imported")
    if imported and imported.get("valid_to") is not None and imported["valid_to"] <= now:
        return True
    if doc["state"] == "PendingDeletion":
        return doc["deletion_date"] <= now
    rotation = doc.get("rotation")
    return bool(rotation and doc["state"] == "Enabled" and rotation["next"] <= now)


@dataclass
class Where:
    """The account and region a request acts in."""

    account: str
    region: str


class KeyRing:
    """Key, alias and grant records in one MetadataStore, with the unsealed material cached."""

    def __init__(self, store: Any, root: material.RootKey) -> None:
        self.store = store
        self.root = root
        self._materials: dict[str, list[bytes]] = {}

    # -- keys --------------------------------------------------------------------------------------

    def create(
        self,
        where: Where,
        spec: str,
        usage: str,
        *,
        description: str,
        policy: str | None,
        tags: list[dict],
        manager: str = "CUSTOMER",
        secret: bytes | None = None,
        key_id: str | None = None,
        external: bool = False,
    ) -> dict:
        """A new key; `secret` is its material when the caller generated it off the event loop,
        `key_id` its id when the caller needed it before (to check the key policy against it).
        An `external` key (Origin EXTERNAL) has no material until ImportKeyMaterial (imports.py)."""
        key_id = key_id or str(uuid.uuid4())
        now = clock.time()
        secret = None if external else secret if secret is not None else material.generate(spec)
        doc = {
            "id": key_id,
            "account": where.account,
            "region": where.region,
            "created": now,
            "description": description,
            "spec": spec,
            "usage": usage,
            "manager": manager,
            "state": "PendingImport" if external else "Enabled",
            "deletion_date": None,
            "pending_days": None,
            "policy": policy or default_key_policy(where.account),
            "tags": tags,
            "rotation": None,
            "materials": [] if secret is None else [self._material_entry(key_id, secret, now, "INITIAL")],
        }
        if external:
            doc["origin"] = "EXTERNAL"
        if manager == "AWS":
            doc["rotation"] = {"days": DEFAULT_ROTATION_DAYS, "next": now + DEFAULT_ROTATION_DAYS * DAY}
        self.save(doc)
        self._materials[key_id] = [] if secret is None else [secret]
        return doc

    def _material_entry(self, key_id: str, secret: bytes, at: float, kind: str) -> dict:
        return {
            "id": uuid.uuid4().hex + uuid.uuid4().hex,
            "sealed": self.root.seal(key_id, secret),
            "at": at,
            "type": kind,
        }

    def save(self, doc: dict) -> None:
        self.store.put_doc("key", doc["id"], doc)

    def get(self, key_id: str) -> dict | None:
        """The key as of the simulated now, or None once it is deleted."""
        doc = self.store.get_doc("key", key_id)
        if doc is None:
            return None
        return self._catch_up(doc)

    def all(self, where: Where) -> list[dict]:
        docs = []
        for doc in self.store.list_docs("key"):
            if doc["account"] == where.account and doc["region"] == where.region:
                current = self._catch_up(doc)
                if current is not None:
                    docs.append(current)
        docs.sort(key=lambda d: d["id"])
        return docs

    def _catch_up(self, doc: dict) -> dict | None:
        now = clock.time()
        if not _due(doc, now):
            return doc
        # Read again under the store's write lock: with several gateways on one PostgreSQL, two
        # reading the same due key must not both rotate it (each with new material of its own,
        # the other's ciphertexts would lose theirs).
        with self.store.transaction():
            stored = self.store.get_doc("key", doc["id"])
            if stored is None:
                return None
            if not _due(stored, now):
                return stored
            return self._apply_due(stored, now)

    def _apply_due(self, doc: dict, now: float) -> dict | None:
        if doc["state"] == "PendingDeletion" and doc["deletion_date"] <= now:
            self.purge(doc)
            return None
        imported = doc.get("imported")
        if imported and imported.get("valid_to") is not None and imported["valid_to"] <= now:
            self.forget_imported(doc)  # expired: KMS deletes imported key material at ValidTo
        rotation = doc.get("rotation")
        if rotation and doc["state"] == "Enabled" and rotation["next"] <= now:
            period = rotation["days"] * DAY
            when = rotation["next"]
            while when <= now:
                self.add_material(doc, when, "AUTOMATIC", save=False)
                when += period
            rotation["next"] = when
            self.save(doc)
        return doc

    def add_material(self, doc: dict, at: float, kind: str, *, save: bool = True) -> None:
        secret = material.generate(doc["spec"])
        doc["materials"].append(self._material_entry(doc["id"], secret, at, kind))
        self._materials.pop(doc["id"], None)
        if save:
            self.save(doc)

    def install_imported(self, doc: dict, material_id: str, secret: bytes, imported: dict) -> None:
        """Imported key material in place (the key's only material: its id depends on the bytes, so
        a re-import of the same material opens what the first import sealed)."""
        entry = {
            "id": material_id,
            "sealed": self.root.seal(doc["id"], secret),
            "at": clock.time(),
            "type": "INITIAL",
        }
        doc["materials"] = [entry]
        doc["imported"] = imported
        if doc["state"] == "PendingImport":
            doc["state"] = "Enabled"
        self._materials.pop(doc["id"], None)
        self.save(doc)

    def forget_imported(self, doc: dict) -> None:
        """Imported key material deleted (DeleteImportedKeyMaterial, or its ValidTo passed): the key
        keeps the material's id, to accept only the same bytes again, and waits in PendingImport."""
        for entry in doc["materials"]:
            entry["sealed"] = None
        doc["imported"] = None
        if doc["state"] != "PendingDeletion":
            doc["state"] = "PendingImport"
        self._materials.pop(doc["id"], None)
        self.save(doc)

    def purge(self, doc: dict) -> None:
        key_id = doc["id"]
        with self.store.transaction():
            self.store.delete_doc("key", key_id)
            for alias in self.aliases(Where(doc["account"], doc["region"])):
                if alias["target"] == key_id:
                    self.store.delete_doc(
                        "alias", self._alias_id(doc["account"], doc["region"], alias["name"])
                    )
            for grant in self.grants(key_id):
                self.store.delete_doc("grant", f"{key_id}:{grant['id']}")
            for token in self.store.list_docs("import_token", prefix=f"{key_id}:"):
                self.store.delete_doc("import_token", f"{key_id}:{token['token']}")
        self._materials.pop(key_id, None)

    def materials(self, doc: dict) -> list[bytes]:
        cached = self._materials.get(doc["id"])
        if cached is None or len(cached) != len(doc["materials"]):
            cached = [
                self.root.unseal(doc["id"], m["sealed"]) if m["sealed"] is not None else b""
                for m in doc["materials"]
            ]
            self._materials[doc["id"]] = cached
        return cached

    # -- resolution ---------------------------------------------------------------------------------

    def resolve(
        self, where: Where, key_ref: str, *, aliases: bool = True, create_managed: bool = False
    ) -> dict:
        """The key a KeyId names: key id, key ARN, alias name or alias ARN (where allowed)."""
        m = _ARN.match(key_ref)
        if m:
            region, account, kind, rest = m.groups()
            if kind == "alias":
                if not aliases:
                    raise not_found(f"Invalid keyId '{key_ref}'")
                return self._by_alias(Where(account, region), "alias/" + rest, create_managed)
            doc = self.get(rest) if _UUID.match(rest) else None
            if doc is None or doc["account"] != account or doc["region"] != region:
                raise not_found(f"Key '{key_ref}' does not exist")
            return doc
        if key_ref.startswith("alias/"):
            if not aliases:
                raise not_found(f"Invalid keyId '{key_ref}'")
            return self._by_alias(where, key_ref, create_managed)
        if not _UUID.match(key_ref):
            raise not_found(f"Invalid keyId '{key_ref}'")
        doc = self.get(key_ref)
        if doc is None or doc["account"] != where.account or doc["region"] != where.region:
            raise not_found(f"Key '{key_arn(where.region, where.account, key_ref)}' does not exist")
        return doc

    def _by_alias(self, where: Where, name: str, create_managed: bool) -> dict:
        alias = self.store.get_doc("alias", self._alias_id(where.account, where.region, name))
        doc = self.get(alias["target"]) if alias else None
        if doc is None and create_managed and name.startswith("alias/aws/"):
            return self.managed_key(where, name.removeprefix("alias/"))
        if doc is None:
            raise not_found(f"Alias {alias_arn(where.region, where.account, name)} is not found.")
        return doc

    def managed_key(self, where: Where, alias: str) -> dict:
        """The AWS managed key behind `aws/<service>`, created on first use as on AWS."""
        name = "alias/" + alias
        existing = self.store.get_doc("alias", self._alias_id(where.account, where.region, name))
        policy = managed_key_policy(where.account, where.region, alias)
        if existing:
            doc = self.get(existing["target"])
            if doc is not None:
                if doc["policy"] == default_key_policy(where.account):
                    # made before managed keys had their own policy (nobody can change it since)
                    doc["policy"] = policy
                    self.save(doc)
                return doc
        service = alias.removeprefix("aws/")
        doc = self.create(
            where,
            "SYMMETRIC_DEFAULT",
            "ENCRYPT_DECRYPT",
            description=f"Default key that protects my {service} data when no other key is defined",
            policy=policy,
            tags=[],
            manager="AWS",
        )
        self.put_alias(where, name, doc["id"])
        return doc

    # -- aliases -----------------------------------------------------------------------------------

    @staticmethod
    def _alias_id(account: str, region: str, name: str) -> str:
        return f"{account}:{region}:{name}"

    def get_alias(self, where: Where, name: str) -> dict | None:
        return self.store.get_doc("alias", self._alias_id(where.account, where.region, name))

    def put_alias(self, where: Where, name: str, target: str, created: float | None = None) -> None:
        now = clock.time()
        self.store.put_doc(
            "alias",
            self._alias_id(where.account, where.region, name),
            {"name": name, "target": target, "created": created or now, "updated": now},
        )

    def delete_alias(self, where: Where, name: str) -> bool:
        return self.store.delete_doc("alias", self._alias_id(where.account, where.region, name))

    def aliases(self, where: Where) -> list[dict]:
        return self.store.list_docs("alias", f"{where.account}:{where.region}:")

    # -- grants ------------------------------------------------------------------------------------

    def grants(self, key_id: str) -> list[dict]:
        return self.store.list_docs("grant", key_id + ":")

    def put_grant(self, key_id: str, grant: dict) -> None:
        self.store.put_doc("grant", f"{key_id}:{grant['id']}", grant)

    def delete_grant(self, key_id: str, grant_id: str) -> bool:
        return self.store.delete_doc("grant", f"{key_id}:{grant_id}")

    def all_grants(self) -> list[dict]:
        return self.store.list_docs("grant")


def grant_token(key_id: str, grant_id: str) -> str:
    """An opaque token naming the grant, as CreateGrant returns and RetireGrant takes."""
    raw = f"{key_id}:{grant_id}".encode()
    return base64.urlsafe_b64encode(b"strata-grant:" + raw).decode().rstrip("=")


def parse_grant_token(token: str) -> tuple[str, str] | None:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except ValueError:
        return None
    if not raw.startswith(b"strata-grant:"):
        return None
    key_id, _, grant_id = raw.removeprefix(b"strata-grant:").decode("utf-8", "replace").partition(":")
    return (key_id, grant_id) if _UUID.match(key_id) and grant_id else None
