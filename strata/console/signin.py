"""Sign in with an access key and secret (checked by an STS GetCallerIdentity call; failures back
off per client address: strata.console.signin_limit), sign out."""

from __future__ import annotations

import secrets

from strata.console import aws
from strata.console.sessions import COOKIE, PRE_COOKIE, Session
from strata.console.web import Page, cookie, cookies_of, safe_return, url
from strata.protocol.http import HttpResponse


def _form(page: Page, error: str = "", status: int = 200) -> HttpResponse:
    secure = page.request.secure
    pre = cookies_of(page.request).get(PRE_COOKIE) or ""
    if len(pre) < 20:
        pre = secrets.token_urlsafe(24)
        page.cookies.append(cookie(PRE_COOKIE, pre, secure, max_age=3600))
    token = page.app.console.sessions.signin_token(pre)
    return page.render(
        "signin.html",
        status=status,
        title="Sign in",
        token=token,
        error=error,
        next=safe_return(page.query.get("next") or page.form.get("next")),
    )


async def signin_form(page: Page) -> HttpResponse:
    return _form(page)


async def signin(page: Page) -> HttpResponse:
    store = page.app.console.sessions
    if not store.check_signin_token(cookies_of(page.request).get(PRE_COOKIE), page.form.get("token")):
        return _form(page, "The sign-in form expired: please try again.", 403)
    access_key = page.form.get("access_key", "").strip()
    secret_key = page.form.get("secret_key", "")
    if not access_key or not secret_key:
        return _form(page, "Enter an access key ID and a secret access key.", 400)
    limit, address = page.app.console.signin_limit, page.request.client
    wait = limit.begin(address)
    if wait:
        response = _form(page, f"Too many failed sign-ins from your address: try again in {wait} s.", 429)
        response.headers.append(("retry-after", str(wait)))
        return response
    trial = Session("", access_key, secret_key, "")
    succeeded = False
    try:
        identity = await aws.call(trial, page.app.settings, "sts", "get_caller_identity", page.request.secure)
        succeeded = True
    except aws.AwsError as e:
        return _form(page, f"Sign-in failed: {e.code}: {e.message}", 401)
    finally:
        limit.end(address, succeeded)
        for client in trial.clients.values():
            client.close()
    session = await store.create(access_key, secret_key, str(identity.get("Arn") or access_key))
    secure = page.request.secure
    page.cookies.append(cookie(COOKIE, session.sid, secure))
    page.cookies.append(cookie(PRE_COOKIE, "", secure, max_age=0))
    return page.redirect(safe_return(page.form.get("next")))


async def signout(page: Page) -> HttpResponse:
    if page.session is not None:
        await page.app.console.sessions.drop(page.session.sid)
    page.session = None
    page.cookies.append(cookie(COOKIE, "", page.request.secure, max_age=0))
    return page.redirect(url("/signin"))


ROUTES = {
    ("GET", "/signin"): signin_form,
    ("POST", "/signin"): signin,
    ("POST", "/signout"): signout,
}
