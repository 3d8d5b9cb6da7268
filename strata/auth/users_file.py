"""The users file (`strata serve --users FILE`, STRATA_USERS_FILE): accounts and their keys.

    default_account = "123456789012"
    [accounts."123456789012"]
    root = { access_key = "FOOBARKEY", secret_key = "FOOBARSECRET" }
    [accounts."123456789012".users.alice]
    access_key = "AKIAALICE00000000001"
    secret_key = "alicesecretalicesecretalicesecret000000"
    policies = ["arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"]
    [accounts."222222222222"]
    root = { access_key = "AKIAALTROOT000000002", secret_key = "altsecretaltsecretaltsecretaltsecret00" }

Each account may have a root key (allowed everything in its account) and IAM users, each with one
access key, managed policy ARNs (`policies`), optional `groups`, `path` and `permissions_boundary`.
Users are created in IAM at start-up if missing (and their file key and policies made present), so
`aws iam list-users` shows them and IAM changes to them persist. `default_account` is the account
of the loopback test/test key unless --account-id says otherwise.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from strata.config import ConfigError

_ACCOUNT = re.compile(r"^\d{12}$")
_USER_NAME = re.compile(r"^[\w+=,.@-]{1,64}$")
_USER_KEYS = {"access_key", "secret_key", "policies", "groups", "path", "permissions_boundary"}


@dataclass
class FileUser:
    name: str
    access_key: str
    secret_key: str
    policies: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    path: str = "/"
    permissions_boundary: str | None = None


@dataclass
class FileAccount:
    account_id: str
    root_key: str | None = None
    root_secret: str | None = None
    users: dict[str, FileUser] = field(default_factory=dict)


@dataclass
class UsersFile:
    default_account: str | None
    accounts: dict[str, FileAccount]


def _key_pair(where: str, table: object) -> tuple[str, str]:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table with access_key and secret_key")
    key, secret = table.get("access_key"), table.get("secret_key")
    if not isinstance(key, str) or not isinstance(secret, str) or not key or not secret:
        raise ConfigError(f"{where}: access_key and secret_key must be non-empty strings")
    if not key.isalnum() or len(key) > 128:
        raise ConfigError(f"{where}: access_key must be alphanumeric (at most 128 characters)")
    return key, secret


def load_users_file(path: Path) -> UsersFile:
    """Parse and check the file; ConfigError names the first problem and where it is."""
    try:
        doc = tomllib.loads(Path(path).read_text())
    except OSError as e:
        raise ConfigError(f"cannot read users file {path}: {e}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"users file {path} is not valid TOML: {e}") from e
    unknown = set(doc) - {"default_account", "accounts"}
    if unknown:
        raise ConfigError(f"users file {path}: unknown setting {sorted(unknown)[0]!r}")
    default = doc.get("default_account")
    if default is not None and (not isinstance(default, str) or not _ACCOUNT.match(default)):
        raise ConfigError(f"users file {path}: default_account must be a 12-digit account id string")
    accounts: dict[str, FileAccount] = {}
    seen_keys: dict[str, str] = {}
    for account_id, body in (doc.get("accounts") or {}).items():
        where = f"users file {path}: accounts.{account_id}"
        if not _ACCOUNT.match(account_id):
            raise ConfigError(f"{where}: an account id is 12 digits")
        if not isinstance(body, dict):
            raise ConfigError(f"{where}: expected a table")
        extra = set(body) - {"root", "users"}
        if extra:
            raise ConfigError(f"{where}: unknown setting {sorted(extra)[0]!r}")
        account = FileAccount(account_id)
        if "root" in body:
            account.root_key, account.root_secret = _key_pair(f"{where}.root", body["root"])
            _unique(seen_keys, account.root_key, f"{where}.root")
        for name, spec in (body.get("users") or {}).items():
            uwhere = f"{where}.users.{name}"
            if not _USER_NAME.match(name):
                raise ConfigError(f"{uwhere}: not a valid IAM user name")
            key, secret = _key_pair(uwhere, spec)
            extra = set(spec) - _USER_KEYS
            if extra:
                raise ConfigError(f"{uwhere}: unknown setting {sorted(extra)[0]!r}")
            _unique(seen_keys, key, uwhere)
            policies = spec.get("policies", [])
            groups = spec.get("groups", [])
            if not isinstance(policies, list) or not all(
                isinstance(p, str) and p.startswith("arn:") for p in policies
            ):
                raise ConfigError(f"{uwhere}: policies must be a list of policy ARNs")
            if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
                raise ConfigError(f"{uwhere}: groups must be a list of group names")
            user_path = spec.get("path", "/")
            if not isinstance(user_path, str) or not user_path.startswith("/") or not user_path.endswith("/"):
                raise ConfigError(f"{uwhere}: path must begin and end with /")
            boundary = spec.get("permissions_boundary")
            if boundary is not None and (not isinstance(boundary, str) or not boundary.startswith("arn:")):
                raise ConfigError(f"{uwhere}: permissions_boundary must be a policy ARN")
            account.users[name] = FileUser(
                name, key, secret, list(policies), list(groups), user_path, boundary
            )
        accounts[account_id] = account
    if default is not None and default not in accounts:
        accounts[default] = FileAccount(default)
    return UsersFile(default, accounts)


def _unique(seen: dict[str, str], key: str, where: str) -> None:
    if key in seen:
        raise ConfigError(f"{where}: access key {key} is already used by {seen[key]}")
    seen[key] = where
