"""A file system made before each got a volume of its own (a plain directory of the data dir, where
a forged filehandle reached the host's files) is moved onto a volume when Strata starts: its files
arrive whole, the escape is closed, and a kill -9 in the middle of the move loses nothing."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import struct
import threading
import time
from pathlib import Path

from tests.services.efs.helpers import cat, file_system_with_targets, ls, needs_nfs, url
from tests.services.efs.raw_nfs4 import Nfs4Error, RawNfs4, forged, kernel_handle

pytestmark = needs_nfs

TEN_DAYS = 10 * 86400
MANY = 5000  # empty files: enough for the copy to be caught running
# A POSIX access ACL (Linux's xattr form): owner rw, user 1234 r, group r, mask r, other none.
ACL = struct.pack("<I", 2) + b"".join(
    struct.pack("<HHI", tag, perm, qualifier)
    for tag, perm, qualifier in (
        (1, 6, 0xFFFFFFFF),
        (2, 4, 1234),
        (4, 4, 0xFFFFFFFF),
        (16, 4, 0xFFFFFFFF),
        (32, 0, 0xFFFFFFFF),
    )
)


def _old_layout(server, fs_id: str) -> Path:  # noqa: ANN001
    """With the server stopped, turn `fs_id` back into what Strata made before volumes: the record
    without "volume", the files in `<data>/efs/fs/<id>/` (root-owned, 755), no volume."""
    efs_dir = server.data_dir / "efs"
    db = sqlite3.connect(efs_dir / "efs.db")
    with db:
        (body,) = db.execute("SELECT body FROM documents WHERE kind='fs' AND id=?", (fs_id,)).fetchone()
        doc = json.loads(body)
        del doc["volume"]
        db.execute("UPDATE documents SET body=? WHERE kind='fs' AND id=?", (json.dumps(doc), fs_id))
    db.close()
    (efs_dir / "volumes" / f"{fs_id}.img").unlink()
    os.rmdir(efs_dir / "volumes" / fs_id)
    plain = efs_dir / "fs" / fs_id
    plain.mkdir(parents=True)
    os.chmod(plain, 0o755)
    return plain


def _tree(root: Path) -> dict[str, tuple]:
    """What the move must keep of every entry: type, mode, owner, mtime, link target, xattrs, and
    which entries are one file (hard links)."""
    out, names = {}, {}
    for top, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = os.path.join(top, name)
            st = os.lstat(path)
            rel = os.path.relpath(path, root)
            link = os.readlink(path) if stat.S_ISLNK(st.st_mode) else None
            xattrs = {} if link else {k: os.getxattr(path, k) for k in os.listxattr(path)}
            names.setdefault(st.st_ino, set()).add(rel)
            out[rel] = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, link, xattrs, st.st_ino)
        if top == str(root):
            dirs.remove("many")
    out = {rel: (*v[:-1], sorted(names[v[-1]])) for rel, v in out.items()}
    st = os.lstat(root)
    out["."] = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns)
    out["many"] = (*out["many"], len(os.listdir(root / "many")))  # its files by number
    return out


def _copy_of(server, fs_id: str) -> int | None:  # noqa: ANN001
    """The process id of the server's copy moving `fs_id` (None when none runs)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if (
            argv[0] in (b"rsync", b"cp")
            and ppid == server.proc.pid
            and any(fs_id.encode() in a for a in argv)
        ):
            return int(pid)
    return None


def test_a_plain_directory_file_system_moves_onto_its_own_volume(strata_factory, tmp_path: Path) -> None:  # noqa: ANN001
    server = strata_factory()
    efs, fs_id, (mt,) = file_system_with_targets(server, zones=1)
    efs.put_lifecycle_configuration(
        FileSystemId=fs_id, LifecyclePolicies=[{"TransitionToIA": "AFTER_7_DAYS"}]
    )
    server.stop()
    plain = _old_layout(server, fs_id)
    (plain / "hello.txt").write_text("made before volumes\n")
    os.chown(plain / "hello.txt", 1001, 1002)
    os.chmod(plain / "hello.txt", 0o640)
    os.setxattr(plain / "hello.txt", "user.note", b"kept")
    os.setxattr(plain / "hello.txt", "system.posix_acl_access", ACL)
    os.link(plain / "hello.txt", plain / "hard.txt")
    os.symlink("hello.txt", plain / "soft")
    os.mkfifo(plain / "fifo", 0o600)
    (plain / "private").mkdir(mode=0o700)
    os.chown(plain / "private", 1003, 1003)
    for name in ("idle.txt", "read.txt"):  # written ten days ago; read.txt was read just now
        (plain / name).write_text(name)
        os.utime(plain / name, (time.time() - TEN_DAYS,) * 2)
    many = plain / "many"
    many.mkdir()
    for i in range(MANY):
        (many / str(i)).write_bytes(b"")
    os.utime(plain, (time.time() - 3600,) * 2)
    before = _tree(plain)
    db = sqlite3.connect(server.data_dir / "efs" / "efs.db")
    with db:  # the lifecycle's record of that read, keyed by the file's inode as measures key it
        db.execute(
            "INSERT INTO accessed(fs, ino, at) VALUES (?,?,?)",
            (fs_id, os.stat(plain / "read.txt").st_ino, time.time()),
        )
    db.close()

    # A kill -9 while the files are being copied: the directory is still the file system.
    starting = threading.Thread(target=lambda: _quietly(server.start))
    starting.start()
    copier, deadline = None, time.monotonic() + 120
    while copier is None and time.monotonic() < deadline:
        copier = _copy_of(server, fs_id) if server.proc else None
    assert copier is not None, "the copy was not seen running"
    os.killpg(copier, signal.SIGSTOP)  # the copy is a process group of its own
    os.kill(server.proc.pid, signal.SIGKILL)
    starting.join()
    os.killpg(copier, signal.SIGKILL)
    assert _tree(plain) == before

    # The next start moves it again, whole.
    server.start()
    files = server.data_dir / "efs" / "volumes" / fs_id / "files"
    assert os.path.ismount(files.parent) and not plain.exists()
    assert _tree(files) == before
    assert cat(url(mt["IpAddress"], "hello.txt")) == "made before volumes\n"
    assert ls(url(mt["IpAddress"], ""))["hello.txt"] == (1001, 1002)
    size = efs.describe_file_systems(FileSystemId=fs_id)["FileSystems"][0]["SizeInBytes"]
    assert size["ValueInIA"] == 4096  # idle.txt; read.txt was read (its record follows it to the volume)
    # The escape is closed: a handle naming a host file is stale.
    secret = tmp_path / "host-secret.txt"
    secret.write_text("host secret\n")
    client = RawNfs4(mt["IpAddress"], 2049)
    try:
        template = client.handle("read.txt")
        assert client.read(template) == b"read.txt"
        assert kernel_handle(files / "read.txt")[1] == template[-8:]
        try:
            leaked = client.read(forged(template, *kernel_handle(secret)))
        except Nfs4Error as e:
            assert e.status == 70  # NFS4ERR_STALE
        else:
            raise AssertionError(f"a forged handle read a host file: {leaked!r}")
    finally:
        client.close()


def _quietly(start) -> None:  # noqa: ANN001
    try:
        start()
    except RuntimeError:  # killed while starting: expected
        pass
