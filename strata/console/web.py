"""HTTP plumbing of the console: the page context handlers receive, responses, and their headers.

Every console response carries headers that keep other pages (including HTML objects served
from S3 on this same origin) from reading or framing it: a strict Content-Security-Policy
(scripts and styles only from the console's own static files, no inline code), frame-ancestors
'none', Cross-Origin-Opener-Policy same-origin, nosniff, no-store, and a same-origin Referrer-Policy
(no console URL leaks to another site; no-referrer would make Chromium send `Origin: null` on the
console's own form posts, which the origin check must then refuse).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload
from urllib.parse import parse_qsl, quote, urlencode

import jinja2

from strata.console import aws
from strata.protocol.http import HttpRequest, HttpResponse

if TYPE_CHECKING:
    from strata.console.sessions import Session
    from strata.gateway.app import StrataApp

ROOT = "/_strata/console"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = [
    ("content-security-policy", CSP),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "same-origin"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("cache-control", "no-store"),
]

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,  # every value is escaped unless a template says otherwise (none does)
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def url(path: str, **query: Any) -> str:
    """A console URL: ROOT + path, with the non-empty query parameters encoded."""
    params = {k: v for k, v in query.items() if v not in (None, "")}
    return ROOT + path + ("?" + urlencode(params, quote_via=quote) if params else "")


_templates.globals["url"] = url


def safe_return(value: str | None) -> str:
    """Where a form asks to go back to, if it is a console page: never another site (`//host`,
    `/\\host`), never a value that could break out of the Location header (control characters)."""
    if (
        value
        and value.startswith(ROOT + "/")
        and "//" not in value.split("?", 1)[0]
        and "\\" not in value
        and value.isprintable()
    ):
        return value
    return url("/s3")


@dataclass
class Page:
    """What a console handler gets: the request, its parsed inputs, and the signed-in session."""

    app: StrataApp
    request: HttpRequest
    path: str  # below ROOT, e.g. "/s3/bucket"
    query: dict[str, str]
    form: dict[str, str] = field(default_factory=dict)
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # name -> (filename, data)
    session: Session | None = None
    cookies: list[str] = field(default_factory=list)  # Set-Cookie values to send

    @property
    def base_url(self) -> str:
        """The origin the browser reached us on (presigned URLs must name this host)."""
        return f"{'https' if self.request.secure else 'http'}://{self.request.host}"

    def render(self, template: str, status: int = 200, **values: Any) -> HttpResponse:
        session = self.session
        values.setdefault("title", "Strata")
        body = _templates.get_template(template).render(
            session=session,
            csrf=session.csrf if session else "",
            flash=session.take_flash() if session else [],
            section=self.path.split("/")[1] if self.path.count("/") else "",
            **values,
        )
        return self.respond(status, body.encode(), "text/html; charset=utf-8")

    def respond(self, status: int, body: bytes, content_type: str) -> HttpResponse:
        return respond(status, body, content_type, self.cookies)

    def json(self, status: int, doc: Any) -> HttpResponse:
        return self.respond(status, json.dumps(doc, default=str).encode(), "application/json")

    def redirect(self, location: str) -> HttpResponse:
        """303 See Other: after a POST, the browser GETs the page (so a reload repeats nothing)."""
        response = self.respond(303, b"", "text/plain")
        response.headers.append(("location", location))
        return response

    def say(self, kind: str, text: str) -> None:
        if self.session is not None:
            self.session.say(kind, text)

    async def call(self, service: str, op: str, **params: Any) -> Any:
        """`op` (botocore's snake_case name) of `service`, called as the signed-in identity over the
        listener this page came in on (strata.console.aws.call); AwsError on failure."""
        assert self.session is not None
        return await aws.call(self.session, self.app.settings, service, op, self.request.secure, **params)

    async def act(self, service: str, op: str, done: str, then: str, **params: Any) -> HttpResponse:
        """A form's one state-changing call: make it, say `done` on the next page, go to `then`
        (a failure is said instead, on the page the form came from: strata.console.Console)."""
        await self.call(service, op, **params)
        self.say("ok", done)
        return self.redirect(then)

    def next_url(self, **markers: Any) -> str:
        """This page again with its paging parameters set to `markers` (where the listing goes on);
        empty on the last page, when the listing gave no marker."""
        if not any(markers.values()):
            return ""
        return url(self.path, **{**self.query, **markers})


def respond(status: int, body: bytes, content_type: str, cookies: list[str] | None = None) -> HttpResponse:
    """A console response with the security headers (and any Set-Cookie values)."""
    headers = [("content-type", content_type), *SECURITY_HEADERS]
    headers += [("set-cookie", c) for c in cookies or ()]
    return HttpResponse(status, headers, body)


def cookies_of(request: HttpRequest) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in (request.headers.get("cookie") or "").split(";"):
        name, eq, value = part.strip().partition("=")
        if eq and name not in out:
            out[name] = value
    return out


def cookie(name: str, value: str, secure: bool, max_age: int | None = None) -> str:
    """A Set-Cookie value scripts cannot read and other sites never send back."""
    parts = [f"{name}={value}", f"Path={ROOT}", "HttpOnly", "SameSite=Strict"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    if secure:
        parts.append("Secure")
    return "; ".join(parts)


@overload
def form_int(form: dict[str, str], field: str, what: str) -> int | None: ...
@overload
def form_int(form: dict[str, str], field: str, what: str, default: int) -> int: ...
def form_int(form: dict[str, str], field: str, what: str, default: int | None = None) -> int | None:
    """A form's whole-number field: `default` when left empty; AwsError (shown to the user, who
    can correct it) when it is not a number."""
    text = form.get(field, "").strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise aws.AwsError("InvalidParameterValue", f"{what} is a whole number.") from None


def parse_form(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    """Fields (and uploaded files) of an urlencoded or multipart/form-data body."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/x-www-form-urlencoded":
        return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)), {}
    if media == "multipart/form-data":
        message = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
        )
        fields: dict[str, str] = {}
        files: dict[str, tuple[str, bytes]] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if not isinstance(name, str):
                continue
            payload = part.get_payload(decode=True)
            data = payload if isinstance(payload, bytes) else b""
            filename = part.get_filename()
            if filename is not None:
                files[name] = (filename, data)
            else:
                fields[name] = data.decode("utf-8", "replace")
        return fields, files
    return {}, {}
