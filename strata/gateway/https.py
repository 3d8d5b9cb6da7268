"""HTTPS beside plain HTTP: the same app on a second port, with a certificate from Strata's own CA.

Clients trust `<data dir>/tls/ca.pem` (boto3 and the AWS CLI: `AWS_CA_BUNDLE=<that file>`,
`verify=<that file>` or `--ca-bundle`), the CA that engines' TLS endpoints use too
(strata.engines.tls). The gateway's certificate lives in `<data dir>/tls/gateway/` and names every
name a client may dial: loopback addresses, `localhost` and `*.localhost`, the LocalStack names
that resolve to 127.0.0.1, the S3 endpoint names with their virtual-hosted buckets, the bind
address and each `--hostname` with its subdomains. It is reissued when that set changes.

What differs from plain HTTP is small: a request knows it came over TLS (`HttpRequest.secure`,
which policies read as aws:SecureTransport), and a file body cannot go out with sendfile (the
kernel would send the file's plain bytes, bypassing the encryption): it is read in chunks off the
loop and written through the TLS transport, with back-pressure. The plain listener's code path is
untouched: everything here is a subclass chosen once per listener.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import ssl
from pathlib import Path

from strata.config import Settings
from strata.engines.tls import ServerCert, authority_for
from strata.gateway.http1 import Handler, HttpConnection, HttpServer
from strata.gateway.http_limits import HttpLimits
from strata.gateway.produced import transport_pieces
from strata.protocol.http import ProducedBody

log = logging.getLogger("strata.http")

# Names every gateway certificate carries: the loopback addresses and the names that resolve to
# them (RFC 6761 `localhost`; LocalStack's public names, which virtual-hosted S3 uses by default).
GATEWAY_NAMES = (
    "127.0.0.1",
    "::1",
    "localhost",
    "*.localhost",
    "localhost.localstack.cloud",
    "s3.localhost.localstack.cloud",
    "*.s3.localhost.localstack.cloud",
)
# A file body goes out in reads of this size (TLS records are 16 KiB; a larger read keeps the
# thread hops few, and the transport's buffer limits bound what waits in memory).
FILE_CHUNK = 256 * 1024


def certificate_names(settings: Settings) -> list[str]:
    """Every name the gateway's certificate carries, in a stable order."""
    names = list(GATEWAY_NAMES)
    bind = _ip(settings.host)
    if bind is None or not bind.is_unspecified:
        names.append(settings.host)  # a specific bind address (or name) is what clients dial
    for name in settings.hostnames:
        names.append(name)
        if _ip(name) is None:
            names.append(f"*.{name}")  # and its subdomains: virtual-hosted buckets
    for name in settings.s3_hosts:
        # Virtual-hosted S3 names (`*.s3.localhost`: TLS clients refuse a wildcard right above a
        # top-level name like `*.localhost`, but take one a level down). AWS's own names are left
        # to AWS.
        if name != "amazonaws.com" and not name.endswith(".amazonaws.com"):
            names += [name, f"*.{name}"]
    return list(dict.fromkeys(n.lower().rstrip(".") for n in names))


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def gateway_certificate(settings: Settings) -> ServerCert:
    """The gateway's certificate and key, issued (or reissued) by the data directory's CA."""
    ca = authority_for(settings.data_dir)
    return ca.issue(ca.root / "gateway", "Strata gateway", certificate_names(settings), exact=True)


def server_context(settings: Settings) -> ssl.SSLContext:
    """The TLS settings of the HTTPS listener (TLS 1.2+, HTTP/1.1 by ALPN)."""
    cert = gateway_certificate(settings)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(cert.cert, cert.key)
    except ssl.SSLError:
        # A certificate and key that do not match (a crash between writing the two): issue anew.
        log.warning("the gateway certificate does not match its key; issuing a new one")
        Path(cert.cert).unlink(missing_ok=True)
        cert = gateway_certificate(settings)
        context.load_cert_chain(cert.cert, cert.key)
    return context


class TlsConnection(HttpConnection):
    """A client connection over TLS: requests are marked secure, files are sent by the transport."""

    _tls: tuple[str, str] | None = None  # (cipher suite, protocol version), once read

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        # The request's handler task was only scheduled by the call above, so it sees this.
        exchange = self._receiving
        if exchange is not None:
            exchange.request.secure = True
            exchange.request.tls = self._tls_session()

    def _tls_session(self) -> tuple[str, str] | None:
        """(cipher suite, protocol version) of this connection, read once."""
        if self._tls is None and self.transport is not None:
            ssl_object = self.transport.get_extra_info("ssl_object")
            cipher = ssl_object.cipher() if ssl_object is not None else None
            if cipher:
                self._tls = (cipher[0], cipher[1])
        return self._tls

    def eof_received(self) -> bool:
        # The client's close_notify: the TLS layer shuts the connection itself (a true answer
        # would only earn a warning), after what is already written goes out.
        super().eof_received()
        return False

    async def _sendfile(self, fd: int, offset: int, length: int) -> None:
        """The file through the TLS transport: chunks read off the loop (the next one while the
        last goes out), each written once the transport has room for it."""
        transport = self.transport
        assert transport is not None
        loop = self.loop
        end = offset + length
        reading: asyncio.Future[bytes] | None = loop.run_in_executor(
            None, os.pread, fd, min(FILE_CHUNK, length), offset
        )
        try:
            while reading is not None:
                chunk = await reading
                reading = None
                if not chunk:
                    raise ConnectionResetError("object file shorter than its length")
                offset += len(chunk)
                if offset < end:
                    reading = loop.run_in_executor(None, os.pread, fd, min(FILE_CHUNK, end - offset), offset)
                if self.closed:
                    raise ConnectionResetError("client went away")
                transport.write(chunk)
                if self._writing_paused:
                    await self._writable()
        finally:
            if reading is not None:  # the caller closes the file: no read may still be using it
                await asyncio.wait([reading])

    async def _send_produced(self, head: bytes, body: ProducedBody) -> None:
        """The head and `body` through the TLS transport, with back-pressure."""
        transport = self.transport
        assert transport is not None
        transport.write(head)
        pieces = transport_pieces(body)
        try:
            async for chunk in pieces:
                if self.closed:
                    raise ConnectionResetError("client went away")
                transport.write(chunk)
                if self._writing_paused:
                    await self._writable()
        finally:
            await pieces.aclose()


class HttpsServer(HttpServer):
    """The HTTPS listener: the same handler as the plain one, over TLS."""

    connection_class = TlsConnection

    def __init__(
        self,
        handler: Handler,
        host: str,
        port: int,
        context: ssl.SSLContext,
        backlog: int = 1024,
        limits: HttpLimits | None = None,
    ) -> None:
        super().__init__(handler, host, port, backlog=backlog, limits=limits)
        self.ssl = context
