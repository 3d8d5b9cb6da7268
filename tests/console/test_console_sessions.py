"""Console sessions outlive the server process: a signed-in browser stays signed in across a kill -9
and a restart, a signed-out one stays out; what is on disk (only Strata's user may read it)
holds neither the cookie's token nor the secret key."""

from __future__ import annotations

import hashlib
import re
import stat

from tests.console.plain_client import ROOT, PlainConsole


def _files_bytes(directory) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file())


def test_sessions_survive_a_restart_and_sign_outs_stay_durable(strata_factory, unique) -> None:
    server = strata_factory()
    iam = server.client("iam")
    iam.create_user(UserName=f"u-{unique}")
    iam.attach_user_policy(UserName=f"u-{unique}", PolicyArn="arn:aws:iam::aws:policy/AmazonS3FullAccess")
    key = iam.create_access_key(UserName=f"u-{unique}")["AccessKey"]
    stays, leaves = PlainConsole(server.port), PlainConsole(server.port)
    assert stays.sign_in(key["AccessKeyId"], key["SecretAccessKey"]) == 303
    assert leaves.sign_in() == 303
    token = stays.cookies["strata-console"]
    csrf = stays.csrf

    directory = server.data_dir / "console"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for path in directory.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    on_disk = _files_bytes(directory)
    assert token.encode() not in on_disk and key["SecretAccessKey"].encode() not in on_disk
    assert csrf.encode() not in on_disk
    assert key["AccessKeyId"].encode() in on_disk  # the row is there, by the token's hash

    old_cookies = dict(leaves.cookies)
    status, _, _, _ = leaves.post_form("/signout", {"csrf": leaves.csrf})
    assert status == 303

    server.kill()  # no shutdown code runs: what sign-in and sign-out acknowledged is on disk already
    server.start()
    stays.port = leaves.port = server.port
    status, _, _, page = stays.request("GET", ROOT + "/s3")
    assert status == 200 and f"user/u-{unique}" in page
    assert re.search(r'name="csrf" value="([^"]+)"', page).group(1) == csrf  # the same CSRF token
    status, _, _, _ = stays.post_form("/s3/create", {"csrf": csrf, "bucket": f"after-{unique}"})
    assert status == 303
    assert server.client("s3").head_bucket(Bucket=f"after-{unique}")  # acted as the user after the restart
    leaves.cookies = old_cookies  # a copy of the signed-out cookie names no session
    status, headers, _, _ = leaves.request("GET", ROOT + "/s3")
    assert status == 303 and "/signin" in headers["location"]
    # a forged cookie (a token never issued, or the stored hash itself) names no session
    for forged in (token[:-4] + "AAAA", hashlib.sha256(token.encode()).hexdigest()):
        stays.cookies["strata-console"] = forged
        status, headers, _, _ = stays.request("GET", ROOT + "/s3")
        assert status == 303 and "/signin" in headers["location"]
