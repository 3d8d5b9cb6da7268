"""The console's only way to act: ordinary SigV4-signed AWS API calls, made as the signed-in identity.

Each call goes out through botocore (in a console thread, so the event loop keeps serving it) to
this same server's own endpoint, and is authenticated and authorised like any other client's:
the console has no back door, and IAM and resource policies apply to it. A page that arrived over
TLS calls the HTTPS listener, so `aws:SecureTransport` reads the same as for the browser.

Presigned URLs (browser uploads of parts, downloads) are signed with the simulated clock's time:
the server checks a presigned URL's expiry against simulated time (strata.auth.sigv4), so a URL
signed with the machine's time would already be expired once the clock was moved past it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, urlencode

import botocore.session
from botocore.auth import SIGV4_TIMESTAMP, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError, ClientError

from strata.affinity import unpin_thread
from strata.sim.clock import clock

if TYPE_CHECKING:
    from strata.config import Settings
    from strata.console.sessions import Session

_CONFIG = Config(
    # retried like any SDK's default: a pooled connection the server closed while idle is not an error
    retries={"max_attempts": 3, "mode": "standard"},
    connect_timeout=10,
    read_timeout=300,
    s3={"addressing_style": "path"},
    max_pool_connections=4,
)
_botocore = botocore.session.get_session()
_POOL = ThreadPoolExecutor(16, thread_name_prefix="console", initializer=unpin_thread)
T = TypeVar("T")
_create_lock = threading.Lock()  # botocore sessions are not safe to create clients from concurrently


class AwsError(Exception):
    """An AWS call failed: `code` and `message` are what the service answered (shown to the user)."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


def endpoint_for(settings: Settings, secure: bool) -> tuple[str, str | bool]:
    """(endpoint URL, botocore `verify`) the console calls for a page that came in `secure` or not."""
    if secure and settings.https_endpoint:
        return settings.https_endpoint, str(settings.data_dir / "tls" / "ca.pem")
    return settings.endpoint, True


def client(session: Session, settings: Settings, service: str, secure: bool) -> Any:
    """The session's botocore client of `service` (made once per session, kept with it)."""
    endpoint, verify = endpoint_for(settings, secure)
    key = (service, endpoint)
    found = session.clients.get(key)
    if found is None:
        with _create_lock:  # pages ask for several calls at once: one client each, made once
            found = session.clients.get(key)
            if found is None:
                found = _botocore.create_client(
                    service,
                    region_name=settings.region,
                    endpoint_url=endpoint,
                    verify=verify,
                    aws_access_key_id=session.access_key,
                    aws_secret_access_key=session.secret_key,
                    config=_CONFIG,
                )
                session.clients[key] = found
    return found


def _call_sync(
    session: Session, settings: Settings, service: str, op: str, secure: bool, params: dict
) -> Any:
    try:
        return getattr(client(session, settings, service, secure), op)(**params)
    except ClientError as e:
        err = e.response.get("Error", {})
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 400
        raise AwsError(str(err.get("Code") or status), str(err.get("Message") or e), int(status)) from None
    except BotoCoreError as e:  # bad parameters (validation), connection problems
        raise AwsError(type(e).__name__, str(e)) from None


async def call(
    session: Session, settings: Settings, service: str, op: str, secure: bool = False, **params: Any
) -> Any:
    """Call `op` (botocore's snake_case name) of `service` as the session's identity; AwsError on failure."""
    return await off_loop(_call_sync, session, settings, service, op, secure, params)


async def off_loop(fn: Callable[..., T], *args: Any) -> T:
    """Run blocking console work in the console's own threads.

    Not the loop's default executor: the request a console thread waits for may itself need a
    thread of that executor (strata.services.base.run_blocking), and console calls filling it
    would leave none for the very requests they wait on.
    """
    return await asyncio.get_running_loop().run_in_executor(_POOL, fn, *args)


class _SimTimeQueryAuth(S3SigV4QueryAuth):
    """botocore's S3 query-string signer, dated by the simulated clock (see the module docstring)."""

    def add_auth(self, request: AWSRequest) -> None:
        request.context["timestamp"] = clock.now().strftime(SIGV4_TIMESTAMP)
        self._modify_request_before_signing(request)
        canonical_request = self.canonical_request(request)
        string_to_sign = self.string_to_sign(request, canonical_request)
        self._inject_signature_to_request(request, self.signature(string_to_sign, request))


def presign_s3(
    session: Session,
    settings: Settings,
    base_url: str,
    method: str,
    bucket: str,
    key: str,
    query: dict[str, str] | None = None,
    expires: int = 3600,
) -> str:
    """A presigned path-style S3 URL on `base_url` (the origin the browser uses)."""
    url = f"{base_url}/{quote(bucket, safe='')}/{quote(key, safe='/~')}"
    if query:
        url += "?" + urlencode(sorted(query.items()), quote_via=quote)
    request = AWSRequest(method=method, url=url)
    credentials = Credentials(session.access_key, session.secret_key)
    _SimTimeQueryAuth(credentials, "s3", settings.region, expires=expires).add_auth(request)
    return request.url
