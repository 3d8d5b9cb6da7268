"""The console's protections, checked with a plain HTTP client that sends exactly what a test says:
the session cookie's attributes, the CSRF token on every state-changing request, the refusal of
other origins, of scripts reading pages and of frames, the strict CSP, escaping, and policies
applying to what the console does (it acts through ordinary signed calls)."""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError

from tests.console.plain_client import ROOT, PlainConsole


def _bucket_exists(server, name: str) -> bool:
    try:
        server.client("s3").head_bucket(Bucket=name)
        return True
    except ClientError:
        return False


def test_the_session_cookie_is_httponly_and_strict_and_pages_set_a_strict_csp(strata_server) -> None:
    console = PlainConsole(strata_server.port)
    assert console.sign_in() == 303
    status, headers, _, text = console.request("GET", ROOT + "/s3")
    assert status == 200, text
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe" not in csp
    assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
    assert headers["cross-origin-opener-policy"] == "same-origin"
    # the sign-in's cookie: server-side session id only, scripts cannot read it, no other site sends it
    fresh = PlainConsole(strata_server.port)
    _, _, _, form = fresh.request("GET", ROOT + "/signin")
    token = re.search(r'name="token" value="([^"]+)"', form).group(1)
    status, _, set_cookies, _ = fresh.post_form(
        "/signin", {"token": token, "access_key": "test", "secret_key": "test"}
    )
    assert status == 303
    session_cookie = next(c for c in set_cookies if c.startswith("strata-console="))
    attributes = [a.strip().lower() for a in session_cookie.split(";")]
    assert "httponly" in attributes and "samesite=strict" in attributes
    assert "test" not in session_cookie.split(";", 1)[0].split("=", 1)[1]  # not the key or secret


def test_state_changing_requests_need_the_sessions_csrf_token(strata_server, unique) -> None:
    console = PlainConsole(strata_server.port)
    console.sign_in()
    for fields in ({}, {"csrf": "wrong"}, {"csrf": ""}):
        status, _, _, text = console.post_form("/s3/create", {"bucket": f"csrf-{unique}", **fields})
        assert status == 403, text
        assert not _bucket_exists(strata_server, f"csrf-{unique}")
    # another session's token is no good either
    other = PlainConsole(strata_server.port)
    other.sign_in()
    status, _, _, _ = console.post_form("/s3/create", {"bucket": f"csrf-{unique}", "csrf": other.csrf})
    assert status == 403
    assert not _bucket_exists(strata_server, f"csrf-{unique}")
    status, headers, _, _ = console.post_form(
        "/s3/create", {"bucket": f"csrf-{unique}", "csrf": console.csrf}
    )
    assert status == 303 and headers["location"].startswith(ROOT + "/s3/bucket")
    assert _bucket_exists(strata_server, f"csrf-{unique}")


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://127.0.0.1:1"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
def test_posts_from_other_origins_are_refused_even_with_the_token(strata_server, unique, headers) -> None:
    console = PlainConsole(strata_server.port)
    console.sign_in()
    status, _, _, _ = console.post_form(
        "/s3/create", {"bucket": f"x-{unique}", "csrf": console.csrf}, headers
    )
    assert status == 403
    assert not _bucket_exists(strata_server, f"x-{unique}")


def test_pages_are_not_served_to_scripts_or_frames(strata_server) -> None:
    console = PlainConsole(strata_server.port)
    console.sign_in()
    # what a script on a page of this origin (an HTML object in S3) sends to read a page
    for headers in (
        {"Sec-Fetch-Mode": "cors", "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Dest": "empty"},
        {"Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "iframe"},
    ):
        status, _, _, text = console.request("GET", ROOT + "/s3", headers=headers)
        assert status == 403, headers
        assert console.csrf not in text
    status, _, _, text = console.request(
        "GET", ROOT + "/s3", headers={"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
    )
    assert status == 200 and console.csrf in text


def test_the_admin_api_refuses_a_same_origin_script(strata_server) -> None:
    """An S3 HTML object on this origin could otherwise POST JSON to the clock without a preflight."""
    console = PlainConsole(strata_server.port)
    before = strata_server.admin("/_strata/clock")["offset_seconds"]
    for mode in ("cors", "same-origin", "no-cors"):
        status, _, _, _ = console.request(
            "POST",
            "/_strata/clock",
            b'{"advance": "400d"}',
            {"Content-Type": "application/json", "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": mode},
        )
        assert status == 403
    assert strata_server.admin("/_strata/clock")["offset_seconds"] == before


def test_sign_in_needs_the_forms_token_and_good_keys(strata_server) -> None:
    console = PlainConsole(strata_server.port)
    status, _, set_cookies, _ = console.post_form("/signin", {"access_key": "test", "secret_key": "test"})
    assert status == 403 and not any(c.startswith("strata-console=") for c in set_cookies)
    _, _, _, form = console.request("GET", ROOT + "/signin")
    token = re.search(r'name="token" value="([^"]+)"', form).group(1)
    # the token belongs to this browser's pre-session cookie, not to another's
    stranger = PlainConsole(strata_server.port)
    stranger.request("GET", ROOT + "/signin")
    status, _, set_cookies, _ = stranger.post_form(
        "/signin", {"token": token, "access_key": "test", "secret_key": "test"}
    )
    assert status == 403 and not any(c.startswith("strata-console=") for c in set_cookies)
    status, _, set_cookies, text = console.post_form(
        "/signin", {"token": token, "access_key": "test", "secret_key": "wrong"}
    )
    assert status == 401 and "SignatureDoesNotMatch" in text
    assert not any(c.startswith("strata-console=") for c in set_cookies)


def test_without_a_session_pages_ask_to_sign_in_and_posts_are_refused(strata_server, unique) -> None:
    console = PlainConsole(strata_server.port)
    status, headers, _, _ = console.request("GET", ROOT + "/s3/bucket?bucket=b")
    assert status == 303 and headers["location"].startswith(ROOT + "/signin?next=")
    status, _, _, _ = console.post_form("/s3/create", {"bucket": f"anon-{unique}", "csrf": "x"})
    assert status == 403
    console.cookies["strata-console"] = "made-up"
    status, _, _, _ = console.post_form("/s3/create", {"bucket": f"anon-{unique}", "csrf": "x"})
    assert status == 403
    assert not _bucket_exists(strata_server, f"anon-{unique}")


def test_signing_out_ends_the_session(strata_server) -> None:
    console = PlainConsole(strata_server.port)
    console.sign_in()
    old = dict(console.cookies)
    status, _, _, _ = console.post_form("/signout", {"csrf": console.csrf})
    assert status == 303
    console.cookies = old  # a stolen copy of the cookie is useless now
    status, headers, _, _ = console.request("GET", ROOT + "/s3")
    assert status == 303 and "/signin" in headers["location"]


def test_policies_apply_to_what_the_console_does(strata_server, unique) -> None:
    iam = strata_server.client("iam")
    user = f"reader-{unique}"
    iam.create_user(UserName=user)
    iam.attach_user_policy(UserName=user, PolicyArn="arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess")
    key = iam.create_access_key(UserName=user)["AccessKey"]
    console = PlainConsole(strata_server.port)
    assert console.sign_in(key["AccessKeyId"], key["SecretAccessKey"]) == 303
    status, _, _, text = console.request("GET", ROOT + "/s3")
    assert status == 200 and f"user/{user}" in text
    status, headers, _, _ = console.post_form(
        "/s3/create", {"bucket": f"denied-{unique}", "csrf": console.csrf, "back": ROOT + "/s3"}
    )
    assert status == 303
    _, _, _, text = console.request("GET", headers["location"])
    assert "AccessDenied" in text
    assert not _bucket_exists(strata_server, f"denied-{unique}")


def test_keys_and_item_values_are_escaped(strata_server, unique) -> None:
    bucket = f"xss-{unique}"
    s3 = strata_server.client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key='<script>alert("k")</script>', Body=b"x")  # shown as a folder
    s3.put_object(Bucket=bucket, Key='<img src=x onerror="alert(1)">', Body=b"x")
    console = PlainConsole(strata_server.port)
    console.sign_in()
    status, _, _, text = console.request("GET", f"{ROOT}/s3/bucket?bucket={bucket}")
    assert status == 200
    assert "&lt;script&gt;alert(&#34;k&#34;)&lt;/" in text
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in text
    assert "<script>alert" not in text and "<img src=x" not in text


def test_over_https_the_cookie_is_secure_and_calls_go_over_tls(strata_server, unique) -> None:
    console = PlainConsole(strata_server.tls_port, ca_file=str(strata_server.ca_path))
    _, _, _, form = console.request("GET", ROOT + "/signin")
    token = re.search(r'name="token" value="([^"]+)"', form).group(1)
    status, _, set_cookies, _ = console.post_form(
        "/signin",
        {"token": token, "access_key": "test", "secret_key": "test"},
        {"Origin": f"https://127.0.0.1:{strata_server.tls_port}"},
    )
    assert status == 303
    session_cookie = next(c for c in set_cookies if c.startswith("strata-console="))
    assert "secure" in [a.strip().lower() for a in session_cookie.split(";")]
    # a bucket policy that refuses plain HTTP: the console's calls for an HTTPS page still pass
    bucket = f"tls-{unique}"
    s3 = strata_server.client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_policy(
        Bucket=bucket,
        Policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "s3:*",
                        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    }
                ],
            }
        ),
    )
    status, _, _, page = console.request("GET", f"{ROOT}/s3/bucket?bucket={bucket}")
    assert status == 200, page
    plain = PlainConsole(strata_server.port)
    plain.sign_in()
    status, _, _, page = plain.request("GET", f"{ROOT}/s3/bucket?bucket={bucket}")
    assert status == 403 and "AccessDenied" in page


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/",
        "https://evil.example/",
        "/_strata/console//evil.example",
        "/_strata/console/\\evil.example",
        "/_strata/console/s3\r\nSet-Cookie: planted=1",
    ],
)
def test_sign_in_never_sends_the_browser_elsewhere(strata_server, target) -> None:
    console = PlainConsole(strata_server.port)
    _, _, _, form = console.request("GET", ROOT + "/signin")
    token = re.search(r'name="token" value="([^"]+)"', form).group(1)
    status, headers, set_cookies, _ = console.post_form(
        "/signin", {"token": token, "access_key": "test", "secret_key": "test", "next": target}
    )
    assert status == 303 and headers["location"] == ROOT + "/s3"
    assert not any("planted" in c for c in set_cookies)


def test_many_pages_at_once_are_all_answered(strata_server) -> None:
    """The time page's Cost Explorer call is served with a thread of the server's default executor:
    sixteen pages at once once filled that executor with console threads waiting for those very
    calls (a deadlock until the client's timeout); the console has threads of its own now."""
    console = PlainConsole(strata_server.port)
    console.sign_in()
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: console.request("GET", f"{ROOT}/time")[0], range(16)))
    assert answers == [200] * 16


def test_no_page_or_action_fails_with_a_500_on_missing_or_bad_input(strata_server) -> None:
    from strata.console import ROUTES  # the route table: every page and action is tried

    console = PlainConsole(strata_server.port)
    console.sign_in()
    odd = "?bucket=&key=&name=%00&table=&start=%7B&cursor=x&hours=y&dims=%5B1%5D&metric=m&mode=query"
    for method, path in sorted(ROUTES):
        if method == "GET":
            for query in ("", odd):
                status, _, _, text = console.request("GET", ROOT + path + query)
                assert status < 500, (path, query, text[:300])
        elif path not in ("/signout", "/signin"):
            for fields in (
                {},
                {"bucket": "", "key": "", "table": "", "item": "[", "step": "-1d", "parts": "x"},
            ):
                status, _, _, text = console.post_form(path, {"csrf": console.csrf, **fields})
                assert status < 500, (path, fields, text[:300])
    status, _, _, text = console.request(
        "POST",
        ROOT + "/s3/multipart",
        b'{"action": "parts", "parts": ["x"]}',
        {"Content-Type": "application/json", "X-CSRF-Token": console.csrf},
    )
    assert status == 400, text


def test_bodies_are_bounded(strata_server, unique) -> None:
    console = PlainConsole(strata_server.port)
    console.sign_in()
    big = {"csrf": console.csrf, "bucket": f"big-{unique}", "pad": "x" * (2 * 1024 * 1024)}
    status, _, _, _ = console.post_form("/s3/create", big)
    assert status == 413
    assert not _bucket_exists(strata_server, f"big-{unique}")
    anonymous = PlainConsole(strata_server.port)
    status, _, _, _ = anonymous.post_form("/s3/create", big)
    assert status == 403


def _loopback(unique: str) -> str:
    """A loopback address of this test's own (127.x.y.z), so its failures slow no other test."""
    n = int(unique[:6], 16)
    return f"127.{n >> 16 & 0xFF or 1}.{n >> 8 & 0xFF}.{n & 0xFF or 1}"


def test_failed_sign_ins_back_off_per_client_address(strata_server, unique) -> None:
    from strata.console.signin_limit import FREE_FAILURES

    guesser = PlainConsole(strata_server.port, source=_loopback(unique))
    for _ in range(FREE_FAILURES):
        assert guesser.sign_in("test", "wrong-secret") == 401
    # the next attempt is not checked at all, even with the right secret
    status, _, _, text = guesser.request("GET", ROOT + "/signin")
    token = re.search(r'name="token" value="([^"]+)"', text).group(1)
    status, headers, _, text = guesser.post_form(
        "/signin", {"token": token, "access_key": "test", "secret_key": "test"}
    )
    assert status == 429 and int(headers["retry-after"]) >= 1, text
    assert "Too many failed sign-ins" in text and "strata-console" not in guesser.cookies
    # another address is not held back by this one's failures
    other = PlainConsole(strata_server.port, source=_loopback(unique[6:] + "0"))
    assert other.sign_in() == 303
    # the wait passes (real time, generous bound): the right secret signs in and the count is forgotten
    deadline = time.monotonic() + 120
    while (answer := guesser.sign_in()) == 429 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert answer == 303
    assert guesser.sign_in("test", "wrong-secret") == 401  # a fresh count: no wait after one failure
    assert guesser.sign_in() == 303
