"""A full or read-only data dir: writes get a retryable 503 ServiceUnavailable, reads go on,
nothing acknowledged is lost, and writes work again once space returns (without a restart) or
once the filesystem is writable again. The data dir is a small tmpfs, or an ext4 image that a
triggered error turns read-only (root only: mount/umount)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from strata.fsck import check_data_dir
from tests.strata_process import StrataProcess

MiB = 1024 * 1024
PART = 1 * MiB  # the server's minimum part size is lowered so multipart fits a small disk

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="mounting a small tmpfs for the data dir needs root"
)


def mount(args: list[str]) -> None:
    """mount, or skip the test where this machine (a container) does not allow it."""
    r = subprocess.run(["mount", *args], capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot mount here: {r.stderr.strip()}")


def body(name: str, size: int) -> bytes:
    seed = hashlib.sha256(name.encode()).digest()
    return (seed * (size // 32 + 1))[:size]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[tuple[Path, StrataProcess]]:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    mount(["-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mnt)])
    server = StrataProcess(mnt / "data", extra_env={"STRATA_LIMIT_S3_MIN_PART_SIZE": str(PART)})
    try:
        yield mnt, server
    finally:
        server.kill()
        subprocess.run(["umount", "-l", str(mnt)], check=False)


class Acked:
    """Every write a client saw acknowledged, to read back at the end."""

    def __init__(self, server: StrataProcess) -> None:
        self.server = server
        self.objects: dict[str, bytes] = {}
        self.items: dict[str, str] = {}
        self._clients: dict[tuple[str, int], Any] = {}

    def client(self, service: str) -> Any:
        """One boto3 client per service and server process (making one per write cost seconds);
        a restarted server gets fresh clients, so no connection outlives the process it went to."""
        assert self.server.proc is not None
        key = (service, self.server.proc.pid)
        if key not in self._clients:
            self._clients[key] = self.server.client(service)
        return self._clients[key]

    def put_object(self, key: str, data: bytes) -> None:
        self.client("s3").put_object(Bucket="disk", Key=key, Body=data)
        self.objects[key] = data

    def multipart(self, key: str, parts: int) -> None:
        s3 = self.client("s3")
        up = s3.create_multipart_upload(Bucket="disk", Key=key)["UploadId"]
        done = []
        for n in range(1, parts + 1):
            etag = s3.upload_part(
                Bucket="disk", Key=key, UploadId=up, PartNumber=n, Body=body(f"{key}{n}", PART)
            )
            done.append({"PartNumber": n, "ETag": etag["ETag"]})
        s3.complete_multipart_upload(Bucket="disk", Key=key, UploadId=up, MultipartUpload={"Parts": done})
        self.objects[key] = b"".join(body(f"{key}{n}", PART) for n in range(1, parts + 1))

    def put_item(self, key: str, size: int = 1000) -> None:
        value = body(key, size).hex()[:size]
        self.client("dynamodb").put_item(TableName="disk", Item={"id": {"S": key}, "v": {"S": value}})
        self.items[key] = value

    def check(self) -> None:
        s3 = self.client("s3")
        for key, data in self.objects.items():
            assert s3.get_object(Bucket="disk", Key=key)["Body"].read() == data, key
        ddb = self.client("dynamodb")
        for key, value in self.items.items():
            item = ddb.get_item(TableName="disk", Key={"id": {"S": key}}, ConsistentRead=True)["Item"]
            assert item["v"]["S"] == value, key


def refused(e: pytest.ExceptionInfo) -> tuple[str, int]:
    err = e.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]


def start(server: StrataProcess) -> Acked:
    server.start()
    server.client("s3").create_bucket(Bucket="disk")
    server.client("dynamodb").create_table(
        TableName="disk",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    acked = Acked(server)
    acked.put_object("small", b"tiny")
    acked.put_object("blob", body("blob", MiB + 1))
    acked.multipart("mp", 2)
    for i in range(20):
        acked.put_item(f"item{i}")
    return acked


def writes_refused(acked: Acked) -> None:
    """Every kind of write answers 503 ServiceUnavailable; reads still answer."""
    with pytest.raises(ClientError) as e:
        acked.put_object("refused-blob", body("x", 3 * MiB))
    assert refused(e) == ("ServiceUnavailable", 503)
    with pytest.raises(ClientError) as e:
        acked.put_object("refused-streamed", body("y", 10 * MiB))  # through the spool
    assert refused(e) == ("ServiceUnavailable", 503)
    with pytest.raises(ClientError) as e:
        acked.multipart("refused-mp", 3)
    assert refused(e) == ("ServiceUnavailable", 503)
    with pytest.raises(ClientError) as e:
        for i in range(200):  # the WAL may still have room for a few
            acked.put_item(f"refused{i}", 300_000)
    assert refused(e) == ("ServiceUnavailable", 503)
    acked.check()


def writes_work_again(acked: Acked, tag: str) -> None:
    acked.put_object(f"after-{tag}", body("after", 2 * MiB))
    acked.put_object(f"after-{tag}-small", b"small again")
    acked.multipart(f"after-{tag}-mp", 2)
    acked.put_item(f"after-{tag}")
    acked.check()


def no_leftovers(server: StrataProcess) -> None:
    server.stop()
    report = check_data_dir(server.data_dir)
    assert report.findings == [], report.problems()


def test_full_disk(small_disk: tuple[Path, StrataProcess]) -> None:
    mnt, server = small_disk
    acked = start(server)
    # an upload whose parts are in before the disk fills; its completion needs room for the object
    s3 = server.client("s3")
    up = s3.create_multipart_upload(Bucket="disk", Key="late-mp")["UploadId"]
    parts = [
        {
            "PartNumber": n,
            "ETag": s3.upload_part(
                Bucket="disk", Key="late-mp", UploadId=up, PartNumber=n, Body=body(f"late{n}", 3 * PART)
            )["ETag"],
        }
        for n in (1, 2)
    ]
    with pytest.raises(ClientError) as e:  # fill the disk with acknowledged objects
        for i in range(100):
            acked.put_object(f"fill{i}", body(f"fill{i}", 2 * MiB))
    assert refused(e) == ("ServiceUnavailable", 503)
    writes_refused(acked)
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(
            Bucket="disk", Key="late-mp", UploadId=up, MultipartUpload={"Parts": parts}
        )
    assert refused(e) == ("ServiceUnavailable", 503)
    temp = [p for p in (server.data_dir / "s3" / "tmp").rglob("*") if p.is_file()]
    assert temp == []  # refused uploads left nothing behind
    subprocess.run(["mount", "-o", "remount,size=128m", str(mnt)], check=True)
    # the upload and its parts survived the refusal: completing it again works
    s3.complete_multipart_upload(Bucket="disk", Key="late-mp", UploadId=up, MultipartUpload={"Parts": parts})
    acked.objects["late-mp"] = body("late1", 3 * PART) + body("late2", 3 * PART)
    writes_work_again(acked, "space")
    server.kill()  # and all of it survives a crash
    server.start()
    acked.check()
    no_leftovers(server)


@pytest.fixture
def ext4_disk(tmp_path: Path) -> Iterator[tuple[Path, Path, StrataProcess]]:
    """A 96 MiB ext4 image mounted with errors=remount-ro, so a triggered filesystem error turns
    it read-only under the running server (as a failing disk does)."""
    img, mnt = tmp_path / "disk.img", tmp_path / "mnt"
    mnt.mkdir()
    with open(img, "wb") as f:
        f.truncate(96 * MiB)
    if subprocess.run(["mkfs.ext4", "-q", "-F", str(img)], capture_output=True).returncode:
        pytest.skip("mkfs.ext4 is not available")
    mount(["-o", "loop,errors=remount-ro", str(img), str(mnt)])
    server = StrataProcess(mnt / "data", extra_env={"STRATA_LIMIT_S3_MIN_PART_SIZE": str(PART)})
    try:
        yield img, mnt, server
    finally:
        server.kill()
        # the killed server's files close a moment later: retry, then detach it lazily, so that no
        # mount is left behind on the machine (it was, run after run, and pytest could not clean up)
        for _ in range(50):
            if subprocess.run(["umount", str(mnt)], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        else:
            subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_data_dir_turns_read_only(ext4_disk: tuple[Path, Path, StrataProcess]) -> None:
    img, mnt, server = ext4_disk
    acked = start(server)
    device = subprocess.run(
        ["findmnt", "-n", "-o", "SOURCE", str(mnt)], capture_output=True, text=True, check=True
    ).stdout.strip()
    Path(f"/sys/fs/ext4/{Path(device).name}/trigger_fs_error").write_text("1")
    options = subprocess.run(["findmnt", "-n", "-o", "OPTIONS", str(mnt)], capture_output=True, text=True)
    assert "emergency_ro" in options.stdout or "ro" in options.stdout.split(",")
    writes_refused(acked)
    # an emergency read-only ext4 comes back only through umount + e2fsck: stop, repair, restart
    server.kill()
    subprocess.run(["umount", str(mnt)], check=True)
    subprocess.run(["e2fsck", "-fy", str(img)], capture_output=True, check=False)
    subprocess.run(["mount", "-o", "loop,errors=remount-ro", str(img), str(mnt)], check=True)
    server.start()
    acked.check()
    writes_work_again(acked, "rw")
    server.kill()
    server.start()
    acked.check()
    no_leftovers(server)
