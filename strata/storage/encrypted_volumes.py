"""Encrypted volumes: a resource's files live in an fscrypt-encrypted directory of its own ext4 image.

Used for encryption at rest by EFS (a file system's files), RDS (an instance's whole directory:
data dir, WAL archive, backups; a snapshot's files) and ElastiCache (a node's RDB/AOF files,
snapshots). The data dir's own file system may not support encryption, so each volume is an ext4
image (`<root>/<id>.img`, sparse, 1 TiB apparent size: it grows as written; deleted blocks are
punched back out with `discard`), loop-mounted at `<root>/<id>/`. Its directory `files/` carries an
fscrypt v2 policy (AES-256-XTS contents, AES-256-CTS names) whose 64-byte master key is a data key
from Strata's KMS: generated once (GenerateDataKey under the resource's KMS key), stored only sealed
in the resource's record, and unsealed (Decrypt) each time the volume is opened. Without the key,
the image holds ciphertext contents and names only; a disabled or deleted KMS key leaves the
resource unreadable after the next restart, as on AWS.

Because each volume is a file system of its own, it can really be filled: `fill` allocates every
free block to ballast files in `<root>/<id>/ballast/` (beside `files/`, out of the resource's
reach; fallocate only marks blocks used in the image's bitmaps, so the host's disk is spared) and
the engine writing in `files/` gets ENOSPC as on a full disk; `drain` gives the space back, and
`open` drains what a Strata stopped mid-fault left (FIS's strata:*:disk-full actions).

A volume made without a key (`create(vol_id, None)`) is the same ext4 image with no fscrypt
policy: EFS keeps every file system, encrypted or not, on a file system of its own, so that an
NFS filehandle put together by hand cannot name a file outside it (strata.services.efs.exports).

Needs root (mount, the fscrypt ioctls), loop devices and mkfs.ext4; `unsupported()` says why not
otherwise.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

IMAGE_BYTES = 1 << 40
KEY_BYTES = 64  # AES-256-XTS needs a 64-byte master key
_ADD_KEY = 0xC0506617  # FS_IOC_ADD_ENCRYPTION_KEY
_SET_POLICY = 0x800C6613  # FS_IOC_SET_ENCRYPTION_POLICY
_KEY_SPEC_IDENTIFIER = 2
_POLICY_V2, _AES_256_XTS, _AES_256_CTS = 2, 1, 4
BALLAST = "ballast"  # the directory of a filled volume's ballast files, beside `files/`
_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


class EncryptionError(Exception):
    """The encrypted volume could not be made, mounted or unlocked."""


def unsupported() -> str | None:
    """Why encrypted volumes cannot be served here, or None when they can."""
    if os.geteuid() != 0:
        return "Strata must run as root to mount encrypted volumes"
    if not Path("/dev/loop-control").exists():
        return "this machine has no loop devices"
    for tool in ("mkfs.ext4", "mount", "umount"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian e2fsprogs, mount)"
    return None


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise EncryptionError(f"{argv[0]} failed: {(done.stderr or done.stdout).strip()[-500:]}")


class EncryptedVolumes:
    """The encrypted volumes of one service's data dir (under `<data_dir>/volumes`)."""

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir) / "volumes"

    def exists(self, vol_id: str) -> bool:
        return self.image(vol_id).exists()

    def is_open(self, vol_id: str) -> bool:
        """Mounted, so its files can be used (a volume whose key KMS would not unseal is not)."""
        return os.path.ismount(self.mountpoint(vol_id)) and self.files(vol_id).is_dir()

    def image(self, vol_id: str) -> Path:
        return self.root / f"{vol_id}.img"

    def mountpoint(self, vol_id: str) -> Path:
        return self.root / vol_id

    def files(self, vol_id: str) -> Path:
        """The volume's encrypted directory, where the resource's files go."""
        return self.mountpoint(vol_id) / "files"

    def create(self, vol_id: str, key: bytes | None) -> None:
        """A new volume with an empty root directory (owned by root, 755), encrypted with `key`
        (None: not encrypted); blocking."""
        self.root.mkdir(parents=True, exist_ok=True)
        image = self.image(vol_id)
        try:
            f = open(image, "xb")  # noqa: SIM115 - never over another volume's image
        except FileExistsError:
            raise EncryptionError(f"the volume {vol_id} exists already") from None
        with f:
            f.truncate(IMAGE_BYTES)
        try:
            _run(
                ["mkfs.ext4", "-q", "-F", *(["-O", "encrypt"] if key else []), "-m", "0"]
                + ["-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard", str(image)]
            )
            self.open(vol_id, key)
            files = self.files(vol_id)
            files.mkdir(mode=0o755)
            os.chmod(files, 0o755)
            if key is None:
                return
            identifier = self._add_key(vol_id, key)
            policy = struct.pack(
                "BBBB4s16s", _POLICY_V2, _AES_256_XTS, _AES_256_CTS, 0, b"\0" * 4, identifier
            )
            fd = os.open(files, os.O_RDONLY | os.O_DIRECTORY)
            try:
                fcntl.ioctl(fd, _SET_POLICY, policy)
            finally:
                os.close(fd)
        except (OSError, EncryptionError) as e:
            self.remove(vol_id)
            raise EncryptionError(f"cannot make the encrypted volume: {e}") from e

    def open(self, vol_id: str, key: bytes | None) -> None:
        """Mount the volume (unless it is: a Strata killed with -9 leaves it mounted) and give
        the kernel its key (None: a volume made without one); blocking."""
        mnt = self.mountpoint(vol_id)
        mnt.mkdir(parents=True, exist_ok=True)
        if not os.path.ismount(mnt):
            _run(["mount", "-o", "loop,noinit_itable,discard", str(self.image(vol_id)), str(mnt)])
        self.drain(vol_id)  # a disk-full fault outlives no Strata: lifted before the engine starts
        if key is not None and self.files(vol_id).exists():
            self._add_key(vol_id, key)

    def fill(self, vol_id: str, name: str) -> int:
        """Allocate every free block of the open volume to the ballast file `name` (called again,
        takes what was freed since); the bytes added. Blocking; allocation only, nothing written."""
        if not os.path.ismount(self.mountpoint(vol_id)):  # never fill the host's disk
            raise EncryptionError(f"the volume {vol_id} is not open")
        path = self.mountpoint(vol_id) / BALLAST / re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            start = os.fstat(fd).st_size
            st = os.statvfs(path.parent)
            free = st.f_bavail * st.f_frsize
            # fallocate(2) itself, never posix_fallocate: its fallback writes zeros (to the host's disk)
            if free and _libc.fallocate(fd, 0, start, free) != 0:
                err = ctypes.get_errno()
                if err != errno.ENOSPC:  # ENOSPC: what could be allocated stays allocated (ext4)
                    raise OSError(err, os.strerror(err), str(path))
            return os.fstat(fd).st_size - start
        finally:
            os.close(fd)

    def free_bytes(self, vol_id: str) -> int | None:
        """The space left on the open volume (None when it is not mounted)."""
        if not os.path.ismount(self.mountpoint(vol_id)):
            return None
        st = os.statvfs(self.mountpoint(vol_id))
        return st.f_bavail * st.f_frsize

    def filled(self, vol_id: str) -> bool:
        """Is the volume held full by `fill` (it stays full until drained, whatever is freed)?"""
        ballast = self.mountpoint(vol_id) / BALLAST
        return os.path.ismount(self.mountpoint(vol_id)) and ballast.is_dir() and any(ballast.iterdir())

    def drain(self, vol_id: str, name: str | None = None) -> None:
        """Give back the space the ballast file `name` (every ballast file: None) holds; blocking."""
        ballast = self.mountpoint(vol_id) / BALLAST
        if name is None:
            shutil.rmtree(ballast, ignore_errors=True)
        else:
            (ballast / re.sub(r"[^A-Za-z0-9_.-]", "_", name)).unlink(missing_ok=True)

    def _add_key(self, vol_id: str, key: bytes) -> bytes:
        """Add the master key to the volume's keyring (idempotent); its identifier."""
        if len(key) != KEY_BYTES:
            raise EncryptionError(f"the volume key must be {KEY_BYTES} bytes")
        arg = struct.pack("II32sII32s", _KEY_SPEC_IDENTIFIER, 0, b"\0" * 32, len(key), 0, b"\0" * 32) + key
        buf = ctypes.create_string_buffer(arg, len(arg))
        fd = os.open(self.mountpoint(vol_id), os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.ioctl(fd, _ADD_KEY, buf, True)
        finally:
            os.close(fd)
        identifier = bytes(buf.raw[8:24])  # key_spec.u.identifier, filled in by the kernel
        ctypes.memset(buf, 0, len(arg))
        return identifier

    def close(self, vol_id: str) -> None:
        """Unmount (the kernel forgets the key with it); blocking."""
        mnt = self.mountpoint(vol_id)
        if os.path.ismount(mnt):
            _run(["umount", str(mnt)])

    def remove(self, vol_id: str) -> None:
        try:
            self.close(vol_id)
        except EncryptionError:
            subprocess.run(["umount", "-l", str(self.mountpoint(vol_id))], capture_output=True, timeout=60)
        shutil.rmtree(self.mountpoint(vol_id), ignore_errors=True)
        self.image(vol_id).unlink(missing_ok=True)

    def close_all(self) -> None:
        if not self.root.exists():
            return
        for image in self.root.glob("*.img"):
            try:
                self.close(image.stem)
            except EncryptionError:
                pass
