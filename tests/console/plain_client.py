"""A console client over plain HTTP (http.client): cookies and CSRF tokens by hand, no browser."""

from __future__ import annotations

import http.client
import re
import ssl
from urllib.parse import urlencode

ROOT = "/_strata/console"


class PlainConsole:
    """Talks to one server's console as a browser would, minus the browser: every header is ours."""

    def __init__(self, port: int, ca_file: str | None = None, source: str | None = None) -> None:
        self.port = port
        self.ca_file = ca_file  # set: speak HTTPS, trusting this CA
        self.source = (source, 0) if source else None  # a loopback address to connect from
        self.cookies: dict[str, str] = {}
        self.csrf = ""

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], list[str], str]:
        """(status, headers, Set-Cookie values, body text) of one request; cookies are kept."""
        if self.ca_file:
            context = ssl.create_default_context(cafile=self.ca_file)
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                "127.0.0.1", self.port, timeout=60, context=context, source_address=self.source
            )
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60, source_address=self.source)
        try:
            sent = dict(headers or {})
            if self.cookies and "Cookie" not in sent:
                sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            text = response.read().decode("utf-8", "replace")
            set_cookies = response.headers.get_all("Set-Cookie") or []
            for value in set_cookies:
                name, _, rest = value.partition("=")
                cookie_value = rest.split(";", 1)[0]
                if "Max-Age=0" in value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = cookie_value
            return response.status, {k.lower(): v for k, v in response.getheaders()}, set_cookies, text
        finally:
            conn.close()

    def post_form(self, path: str, fields: dict[str, str], headers: dict[str, str] | None = None):
        sent = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
        return self.request("POST", ROOT + path, urlencode(fields).encode(), sent)

    def sign_in(self, access_key: str = "test", secret_key: str = "test") -> int:
        status, _, _, text = self.request("GET", ROOT + "/signin")
        assert status == 200, text
        token = re.search(r'name="token" value="([^"]+)"', text).group(1)
        status, headers, _, text = self.post_form(
            "/signin", {"token": token, "access_key": access_key, "secret_key": secret_key}
        )
        if status == 303:
            status, _, _, page = self.request("GET", ROOT + "/s3")
            self.csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
            return 303
        return status
