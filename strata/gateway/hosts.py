"""Which `Host` header values Strata answers: a defence against DNS rebinding.

A web page on `evil.example` whose DNS name is re-pointed to 127.0.0.1 makes the victim's browser
send requests to Strata that the browser treats as same-origin with the page, so the page could
read every answer (signed with the well-known test/test key). Such requests carry the attacker's
name in `Host`; refusing names Strata does not serve stops them.

Accepted (any port, case-insensitive):
- any IP address literal (`127.0.0.1`, `[::1]`, a LAN address when bound to 0.0.0.0): a page
  served from an IP address is not a rebinding attack;
- `localhost` and `*.localhost` (which resolve to loopback: RFC 6761);
- `localhost.localstack.cloud` and its subdomains (public DNS that resolves to 127.0.0.1; the
  name virtual-hosted S3 uses by default);
- `amazonaws.com` and its subdomains (AWS's own names, e.g. `<bucket>.s3-accelerate.amazonaws.com`,
  when a client maps them to Strata): an attacker cannot make them resolve to loopback;
- the machine's own host name (`socket.gethostname()`), the bind address, each S3 endpoint name in `Settings.s3_hosts`, and each extra name given with
  `--hostname` / `STRATA_HOSTNAMES`, with their subdomains (virtual-hosted buckets);
- `<account-id>.<IP address literal>`: what the SDKs make of an address endpoint_url for S3
  Control, and `<access-point>-<account-id>.<IP address literal>` for a call through an access
  point ARN (no DNS name resolves so, so no page can be served from it);
- no Host header at all (HTTP/1.0 clients; a browser always sends one).
"""

from __future__ import annotations

import ipaddress
import re
import socket

from strata.config import Settings
from strata.protocol.errors import ServiceError

# Names accepted with all their subdomains, whatever the settings.
BUILTIN_NAMES = ("localhost", "localhost.localstack.cloud", "amazonaws.com")
_CACHE_SIZE = 1024
_ACCOUNT = re.compile(r"^(?:[a-z0-9-]+-)?\d{12}$")  # S3 Control, or an access point


def host_name(host: str) -> str:
    """The name part of a Host header value: no port, no IPv6 brackets, lower case, no final dot."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[1:end] if end > 0 else host
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class HostPolicy:
    """`allows(host_header)` for one server's settings; answers are cached per distinct value."""

    def __init__(self, settings: Settings) -> None:
        names = [*BUILTIN_NAMES, socket.gethostname(), settings.host, *settings.s3_hosts, *settings.hostnames]
        self.names = tuple(dict.fromkeys(host_name(n) for n in names if n))
        self._answers: dict[str, bool] = {}

    def allows(self, host: str) -> bool:
        answer = self._answers.get(host)
        if answer is None:
            answer = self._decide(host)
            if len(self._answers) >= _CACHE_SIZE:
                self._answers.clear()  # many distinct values: someone probing; keep memory bounded
            self._answers[host] = answer
        return answer

    def _decide(self, host: str) -> bool:
        name = host_name(host)
        if not name or _is_ip(name):
            return True
        account, _, rest = name.partition(".")
        if _ACCOUNT.match(account) and rest and _is_ip(rest):
            return True  # S3 Control: the SDKs put the account id in front of an address endpoint
        return any(name == n or name.endswith("." + n) for n in self.names)


def misdirected(host: str) -> ServiceError:
    """The answer to a Host name Strata does not serve (HTTP 421 Misdirected Request)."""
    name = host[:100]
    return ServiceError(
        "MisdirectedRequest",
        f"Strata does not serve the host name {name!r} (a defence against DNS rebinding); "
        f"start it with --hostname {host_name(name)!r} or STRATA_HOSTNAMES to accept it",
        421,
    )
