"""Unix socket paths that fit the kernel's limit whatever the depth of the data dir.

A unix socket's path must fit `sun_path` (108 bytes with the trailing NUL), and some engines keep
less for themselves (HAProxy binds `<path>.<pid>.tmp` and renames it: 97). A data dir of ~100
bytes is ordinary (CI's xdist temp dirs), so an engine whose socket sits in its run dir fails to
start there. Such sockets go to a short directory under /tmp named by a hash of the owner's path:
the same owner finds the same directory after a restart, and two owners never share one. The
directory is private (0700, Strata's own): a socket that carries admin rights must not be reachable
by other local users, which rules out the abstract namespace for those.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import stat
from pathlib import Path

from strata.engines.process import EngineError, effective_user

SUN_PATH_MAX = 107  # bytes of sun_path before its trailing NUL
SHORT_ROOT = Path("/tmp")


def path_digest(path: Path) -> str:
    """16 hex digits naming a directory by its resolved path (stable across restarts)."""
    return hashlib.sha1(str(Path(path).resolve()).encode()).hexdigest()[:16]


def short_tmp_path(owner: Path, kind: str, suffix: str = "") -> Path:
    """`/tmp/strata-<kind>-<hash of owner's resolved path><suffix>` (about 40 bytes)."""
    return SHORT_ROOT / f"strata-{kind}-{path_digest(owner)}{suffix}"


def private_dir(path: Path, user: str | None = None) -> Path:
    """Create `path` as a 0700 directory of ours, or check that the one there is (a directory
    planted in /tmp by another user, or one others can enter, is refused rather than used).
    `user`: the engine account the caller gives the directory to (`chown_tree`), which may own
    the one there already (made by an earlier start)."""
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        st = path.lstat()
        engine = effective_user(user)
        owners = {os.geteuid()} | ({pwd.getpwnam(engine).pw_uid} if engine else set())
        if not stat.S_ISDIR(st.st_mode) or st.st_uid not in owners or st.st_mode & 0o077:
            raise EngineError(
                f"{path} is not a private directory of this user: refusing to put sockets there"
            ) from None
    return path


def socket_path(run_dir: Path, name: str, kind: str, limit: int = SUN_PATH_MAX) -> Path:
    """Where a socket called `name` of the engine in `run_dir` lives: in `run_dir` when the path
    fits `limit` bytes, else in the short directory for `run_dir` (which the engine's owner makes
    with `private_dir` before starting it, and may remove when it stops)."""
    path = Path(run_dir) / name
    if len(os.fsencode(path)) <= limit:
        return path
    return short_tmp_path(run_dir, kind) / name
