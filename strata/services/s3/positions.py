"""Version ids and upload ids that carry their own place in a listing.

On S3 a `VersionIdMarker` or `UploadIdMarker` is a position in the listing, not a reference to
something that must still exist: the usual loop that empties a versioned bucket lists a page,
deletes every version on it, and asks for the next page after the version it just deleted. So an
id names where it sorts, and a marker whose version or upload is gone still says where to resume.

- A version id encodes its row's sequence number (versions of a key sort newest first by it).
- An upload id encodes its initiation time (uploads of a key sort by it, then by id).

Both stay opaque, URL-safe strings of the lengths Strata always used (32 and 64 characters), with
random bytes after the position so they are not guessable. A tag in front tells them from ids
made before this encoding existed, which carry no position.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import struct

_VERSION_TAG = b"\x5a\xa5"  # 2 + 6 (sequence) + 16 random bytes = 24 bytes = 32 characters
_UPLOAD_TAG = b"\xa5\x5a"  # 2 + 8 (initiated, a double) + 38 random bytes = 48 bytes = 64 characters


def version_id_at(seq: int) -> str:
    """A fresh version id for the row with sequence number `seq`."""
    raw = _VERSION_TAG + seq.to_bytes(6, "big") + secrets.token_bytes(16)
    return base64.urlsafe_b64encode(raw).decode()


def version_position(version_id: str) -> int | None:
    """The sequence number a version id was made for, or None if it carries none."""
    raw = _decode(version_id, 24)
    if raw is None or raw[:2] != _VERSION_TAG:
        return None
    return int.from_bytes(raw[2:8], "big")


def upload_id_at(initiated: float) -> str:
    """A fresh upload id for an upload initiated at `initiated` (clock seconds)."""
    raw = _UPLOAD_TAG + struct.pack(">d", initiated) + secrets.token_bytes(38)
    return base64.urlsafe_b64encode(raw).decode()


def upload_position(upload_id: str) -> float | None:
    """The initiation time an upload id was made for, or None if it carries none."""
    raw = _decode(upload_id, 48)
    if raw is None or raw[:2] != _UPLOAD_TAG:
        return None
    (initiated,) = struct.unpack(">d", raw[2:10])
    return initiated if initiated == initiated else None  # not NaN


def _decode(text: str, size: int) -> bytes | None:
    if len(text) != size * 4 // 3:
        return None
    try:
        raw = base64.urlsafe_b64decode(text.encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None
    return raw if len(raw) == size else None
