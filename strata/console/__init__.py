"""The web console at /_strata/console: server-rendered pages over ordinary signed AWS calls.

Pages (each module's ROUTES):
  signin.py     sign in with an access key and secret, sign out
  s3_pages.py   buckets, the prefix browser, uploads (form, and multipart from the browser with
                presigned parts), downloads, versions, metadata and tags
  s3_settings_pages.py  a bucket's default encryption and lifecycle rules, edited
  dynamodb_pages.py  tables, the item browser (query and scan builders), the item editor
  rds_pages.py  instances, clusters, snapshots; reboot (failover), snapshot, point-in-time restore
  elasticache_pages.py  replication groups and clusters, test failover, a Redis key browser (SCAN)
  storage_pages.py  EBS volumes and snapshots, EFS file systems and mount targets
  cloudwatch_pages.py  a namespace's or a resource's metrics, and a chart of one
  time_pages.py the simulated clock (advance buttons) and the bill over time; health

Why it is safe to serve beside the AWS endpoint (strata.console.web has the response headers):
- the session is an HttpOnly, SameSite=Strict cookie naming server-side state (kept durably, the
  cookie's token only as a hash: strata.console.sessions); the secret never goes back to the
  browser;
- every POST carries the session's CSRF token and must not come from another origin;
- a browser may read a console page only by navigating to it: a script's fetch of a page
  (Sec-Fetch-Mode other than navigate), or a frame, is refused, so a page served from this
  origin by S3 cannot read a CSRF token out of the console;
- every action is an AWS API call made as the signed-in identity (strata.console.aws), so
  policies apply; only the clock (Strata's own, not AWS's) is moved in-process, and only for a
  loopback client, as the admin API requires.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from strata.console import (
    cloudwatch_pages,
    dynamodb_pages,
    elasticache_pages,
    rds_pages,
    s3_pages,
    s3_settings_pages,
    signin,
    storage_pages,
    time_pages,
)
from strata.console.aws import AwsError
from strata.console.sessions import COOKIE, SessionStore
from strata.console.signin_limit import SigninLimit
from strata.console.web import ROOT, Page, cookies_of, parse_form, respond, safe_return, url
from strata.gateway.hosts import misdirected
from strata.protocol.errors import ServiceError
from strata.protocol.http import HttpRequest, HttpResponse

__all__ = ["ROOT", "Console"]

if TYPE_CHECKING:
    from strata.gateway.app import StrataApp
    from strata.gateway.request_body import RequestBody

log = logging.getLogger("strata.console")

STATIC = Path(__file__).parent / "static"
_STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
# A form upload passes through the server twice (browser -> console -> S3): larger files go up
# from the browser in presigned parts instead.
MAX_FORM_BODY = 16 * 1024 * 1024
MAX_SMALL_BODY = 1024 * 1024  # every other form and JSON step
_FRAMED = ("iframe", "frame", "embed", "object", "fencedframe")

ROUTES = {
    **signin.ROUTES,
    **s3_pages.ROUTES,
    **s3_settings_pages.ROUTES,
    **dynamodb_pages.ROUTES,
    **rds_pages.ROUTES,
    **elasticache_pages.ROUTES,
    **storage_pages.ROUTES,
    **cloudwatch_pages.ROUTES,
    **time_pages.ROUTES,
}
PUBLIC = {("GET", "/signin"), ("POST", "/signin")}


def _text(status: int, message: str) -> HttpResponse:
    return respond(status, message.encode(), "text/plain; charset=utf-8")


def _foreign(request: HttpRequest) -> bool:
    """A request another web origin made (Sec-Fetch-Site, or an Origin that is not ours)."""
    site = (request.headers.get("sec-fetch-site") or "").lower()
    if site and site not in ("same-origin", "none"):
        return True
    origin = request.headers.get("origin")
    if origin is None:
        return False
    scheme = "https" if request.secure else "http"
    return origin.strip().lower() != f"{scheme}://{request.host.strip().lower()}"


class Console:
    """Answers every request under /_strata/console for one server."""

    def __init__(self, app: StrataApp) -> None:
        self.app = app
        self.sessions = SessionStore(
            app.settings.service_dir("console"), fsync=app.settings.fsync, url=app.settings.metadata
        )
        self.signin_limit = SigninLimit()

    def close(self) -> None:
        self.sessions.close()

    async def handle(self, request: HttpRequest, body: RequestBody) -> HttpResponse:
        try:
            return await self._handle(request, body)
        except Exception:  # noqa: BLE001 - never leak a traceback to the browser
            log.exception("console error on %s %s", request.method, request.raw_path)
            return _text(500, "Internal error")

    async def _handle(self, request: HttpRequest, body: RequestBody) -> HttpResponse:
        if not self.app.hosts.allows(request.host):
            return _text(421, misdirected(request.host).message)
        path = request.raw_path[len(ROOT) :] or "/"
        if (request.headers.get("sec-fetch-dest") or "").lower() in _FRAMED:
            return _text(403, "The console is not shown inside frames.")
        if path.startswith("/static/") and request.method in ("GET", "HEAD"):
            return self._static(path[len("/static/") :])
        method = request.method
        if method == "GET":
            mode = (request.headers.get("sec-fetch-mode") or "navigate").lower()
            if mode != "navigate":  # a script's fetch: pages are for the browser to show, not read
                return _text(403, "Console pages are only served to a browser navigating to them.")
        elif method == "POST":
            if _foreign(request):
                return _text(403, "The console refuses requests from other web origins.")
        else:
            return _text(405, "Method not allowed")
        path = path.rstrip("/") or "/"
        page = Page(self.app, request, path, dict(request.query_dict()))
        page.session = await self.sessions.get(cookies_of(request).get(COOKIE))
        if path == "/":
            return page.redirect(url("/s3") if page.session else url("/signin"))
        handler = ROUTES.get((method, path))
        if handler is None:
            return _text(404, "No such console page.")
        public = (method, path) in PUBLIC
        if page.session is None and not public:
            if method == "GET":
                return page.redirect(url("/signin", next=request.raw_path + _qs(request)))
            return _text(403, "Sign in first (your session may have expired).")
        if method == "POST":  # the body is read only for a signed-in session (or to sign in)
            try:
                data = await body.read(MAX_FORM_BODY if path == "/s3/upload" else MAX_SMALL_BODY)
            except ServiceError:
                return _text(413, "That request is too large: upload big files by dragging them in.")
            content_type = request.headers.get("content-type") or ""
            if content_type.split(";", 1)[0].strip().lower() == "application/json":
                page.form = {"_json": data.decode("utf-8", "replace")}
            else:
                page.form, page.files = parse_form(content_type, data)
            if page.session is not None and not public:
                token = page.form.get("csrf") or request.headers.get("x-csrf-token")
                if not page.session.check_csrf(token):
                    return _text(403, "The form's CSRF token is missing or wrong: reload the page.")
        try:
            return await handler(page)
        except AwsError as e:
            if method == "POST" and "_json" not in page.form:
                page.say("error", f"{e.code}: {e.message}")
                return page.redirect(safe_return(page.form.get("back")))
            if "_json" in page.form:
                return page.json(e.status if e.status >= 400 else 400, {"code": e.code, "message": e.message})
            return page.render("error.html", status=e.status if e.status >= 400 else 400, error=e)

    def _static(self, name: str) -> HttpResponse:
        file = STATIC / name
        kind = _STATIC_TYPES.get(file.suffix)
        if "/" in name or kind is None or not file.is_file():
            return _text(404, "No such file.")
        return respond(200, file.read_bytes(), kind)


def _qs(request: HttpRequest) -> str:
    return "?" + request.query_string if request.query_string else ""
