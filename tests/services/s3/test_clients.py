"""Real command-line clients: the AWS CLI (`aws s3` and `aws s3api`) and rclone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

AWS = str(Path(sys.executable).with_name("aws"))


def aws(server, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = server.env()
    env["AWS_DEFAULT_REGION"] = "us-east-1"
    env.pop("AWS_CONFIG_FILE", None)
    proc = subprocess.run([AWS, *args], env=env, capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"aws {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def make_tree(root: Path) -> dict[str, bytes]:
    files = {
        "index.html": b"<html></html>",
        "css/site.css": b"body{}",
        "img/logo.png": os.urandom(3000),
        "deep/a/b/c/d.txt": b"deep",
        "space name/ü.txt": b"unicode",
        "big.bin": os.urandom(9 * 1024 * 1024),  # above the CLI's 8 MB multipart threshold
    }
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return files


def read_tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_aws_cli_s3_high_level(strata_server, unique: str, tmp_path: Path) -> None:
    bucket = f"cli-{unique}"
    aws(strata_server, "s3", "mb", f"s3://{bucket}")
    assert bucket in aws(strata_server, "s3", "ls").stdout
    src = tmp_path / "src"
    files = make_tree(src)
    aws(strata_server, "s3", "cp", str(src / "index.html"), f"s3://{bucket}/single/index.html")
    aws(strata_server, "s3", "sync", str(src), f"s3://{bucket}/site")
    listing = aws(strata_server, "s3", "ls", "--recursive", f"s3://{bucket}/site/").stdout
    for rel in files:
        assert f"site/{rel}" in listing
    # second sync uploads nothing
    assert "upload:" not in aws(strata_server, "s3", "sync", str(src), f"s3://{bucket}/site").stdout
    back = tmp_path / "back"
    aws(strata_server, "s3", "sync", f"s3://{bucket}/site", str(back))
    assert read_tree(back) == files
    # deletions propagate with --delete
    (src / "css/site.css").unlink()
    out = aws(strata_server, "s3", "sync", "--delete", str(src), f"s3://{bucket}/site").stdout
    assert (
        "delete:" in out
        and "site/css/site.css" not in aws(strata_server, "s3", "ls", "--recursive", f"s3://{bucket}").stdout
    )
    aws(strata_server, "s3", "cp", f"s3://{bucket}/site/big.bin", str(tmp_path / "big.copy"))
    assert (tmp_path / "big.copy").read_bytes() == files["big.bin"]
    aws(strata_server, "s3", "rm", "--recursive", f"s3://{bucket}/site")
    aws(strata_server, "s3", "rm", f"s3://{bucket}/single/index.html")
    aws(strata_server, "s3", "rb", f"s3://{bucket}")
    assert bucket not in aws(strata_server, "s3", "ls").stdout


def test_aws_cli_s3api(strata_server, unique: str, tmp_path: Path) -> None:
    bucket = f"api-{unique}"
    aws(strata_server, "s3api", "create-bucket", "--bucket", bucket)
    body = tmp_path / "b.txt"
    body.write_bytes(b"s3api body")
    out = json.loads(
        aws(
            strata_server,
            "s3api",
            "put-object",
            "--bucket",
            bucket,
            "--key",
            "k",
            "--body",
            str(body),
            "--metadata",
            "owner=me",
            "--content-type",
            "text/plain",
        ).stdout
    )
    assert out["ETag"]
    head = json.loads(aws(strata_server, "s3api", "head-object", "--bucket", bucket, "--key", "k").stdout)
    assert head["Metadata"] == {"owner": "me"} and head["ContentType"] == "text/plain"
    aws(strata_server, "s3api", "get-object", "--bucket", bucket, "--key", "k", str(tmp_path / "out.txt"))
    assert (tmp_path / "out.txt").read_bytes() == b"s3api body"
    listed = json.loads(aws(strata_server, "s3api", "list-objects-v2", "--bucket", bucket).stdout)
    assert [c["Key"] for c in listed["Contents"]] == ["k"]
    aws(
        strata_server,
        "s3api",
        "put-bucket-versioning",
        "--bucket",
        bucket,
        "--versioning-configuration",
        "Status=Enabled",
    )
    status = json.loads(aws(strata_server, "s3api", "get-bucket-versioning", "--bucket", bucket).stdout)
    assert status["Status"] == "Enabled"
    missing = aws(strata_server, "s3api", "head-object", "--bucket", bucket, "--key", "nope", check=False)
    assert missing.returncode != 0 and "404" in missing.stderr


@pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone is installed by scripts/apt-packages.txt")
def test_rclone_copy_and_check(strata_server, unique: str, tmp_path: Path) -> None:
    conf = tmp_path / "rclone.conf"
    conf.write_text(
        "[strata]\ntype = s3\nprovider = Other\naccess_key_id = test\nsecret_access_key = test\n"
        f"endpoint = {strata_server.endpoint}\nregion = us-east-1\nforce_path_style = true\n"
    )
    bucket = f"rc-{unique}"

    def rclone(*args: str) -> str:
        # the AWS SDK inside rclone would pick up AWS_* settings (e.g. a CA bundle) from the environment
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        proc = subprocess.run(
            ["rclone", "--config", str(conf), *args], capture_output=True, text=True, timeout=180, env=env
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    rclone("mkdir", f"strata:{bucket}")
    src = tmp_path / "src"
    files = make_tree(src)
    rclone("copy", str(src), f"strata:{bucket}/tree", "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M")
    rclone("check", str(src), f"strata:{bucket}/tree")
    back = tmp_path / "back"
    rclone("copy", f"strata:{bucket}/tree", str(back))
    assert read_tree(back) == files
    assert sorted(rclone("lsf", "-R", "--files-only", f"strata:{bucket}/tree").splitlines()) == sorted(files)
    rclone("purge", f"strata:{bucket}")
