"""Strata's certificate authority and the server certificates it issues to engines.

Engines that offer in-transit encryption (Redis with `tls-port`, later PostgreSQL/MariaDB) serve
a certificate signed by one CA per data directory, so a client trusts every Strata endpoint by
trusting one file: `<data_dir>/tls/ca.pem` (e.g. redis-py `ssl_ca_certs=...`, or
`SSL_CERT_FILE=<data_dir>/tls/ca.pem` for code that passes no CA, like `redis.Redis(ssl=True)`).

The CA key never leaves the data directory. Server certificates name every address a client may
dial (the loopback addresses of the endpoint and its nodes, `localhost`), carry serverAuth and
clientAuth (engines use the same certificate to talk to each other, e.g. Redis replicas) and are
re-issued when missing, expiring or lacking a wanted name.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
SERVER_DAYS = 825
RENEW_BEFORE = dt.timedelta(days=30)
# Certificates are about real time (clients check them against the wall clock), so they use
# the real clock, not the simulated one: advancing Strata's clock must not expire them.
_now = lambda: dt.datetime.now(dt.UTC)  # noqa: E731


@dataclass(frozen=True)
class ServerCert:
    """Paths an engine's TLS settings point at."""

    cert: Path
    key: Path
    ca: Path


def _write_private(path: Path, data: bytes) -> None:
    _write_durably(path, data, 0o600)


def _write_public(path: Path, data: bytes) -> None:
    _write_durably(path, data, 0o644)


def _write_durably(path: Path, data: bytes, mode: int) -> None:
    """Publish `path` whole (temp file, fsync, rename, directory fsync): a crash or a filesystem
    error right after never leaves an empty or torn certificate that stops the next start."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), mode)  # O_CREAT's mode is cut by the umask
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _names(sans: list[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for name in dict.fromkeys(sans):  # de-duplicated, order kept
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


class CertificateAuthority:
    """A persistent CA under `<root>` (ca.pem, ca-key.pem) that issues server certificates."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()
        self._key: ec.EllipticCurvePrivateKey | None = None
        self._cert: x509.Certificate | None = None

    @property
    def ca_path(self) -> Path:
        """The file clients trust (PEM)."""
        return self.root / "ca.pem"

    def ensure(self) -> Path:
        """Create the CA on first use; return the path of its certificate."""
        with self._lock:
            self._load_or_create()
        return self.ca_path

    def _load_or_create(self) -> None:
        if self._key is not None:
            return
        key_path = self.root / "ca-key.pem"
        if key_path.exists() and self.ca_path.exists():
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            assert isinstance(key, ec.EllipticCurvePrivateKey)
            self._key = key
            self._cert = x509.load_pem_x509_certificate(self.ca_path.read_bytes())
            return
        self.root.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Strata"),
                x509.NameAttribute(NameOID.COMMON_NAME, "Strata local CA"),
            ]
        )
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        _write_private(
            key_path,
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        )
        _write_public(self.ca_path, cert.public_bytes(serialization.Encoding.PEM))
        self._key, self._cert = key, cert

    def issue(self, directory: Path, common_name: str, sans: list[str], exact: bool = False) -> ServerCert:
        """A server certificate (and key) in `directory` naming `sans`; reused while still fitting
        (naming at least those, or with `exact`, exactly those: a name dropped is reissued away)."""
        with self._lock:
            self._load_or_create()
            assert self._key is not None and self._cert is not None
            directory = Path(directory)
            directory.mkdir(parents=True, exist_ok=True)
            cert_path, key_path = directory / "server.pem", directory / "server-key.pem"
            wanted = _names(sans + ["localhost", "127.0.0.1"])
            if cert_path.exists() and key_path.exists() and self._fits(cert_path, wanted, exact):
                return ServerCert(cert_path, key_path, self.ca_path)
            key = ec.generate_private_key(ec.SECP256R1())
            now = _now()
            cert = (
                x509.CertificateBuilder()
                .subject_name(
                    x509.Name(
                        [
                            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Strata"),
                            x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64]),
                        ]
                    )
                )
                .issuer_name(self._cert.subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.SubjectAlternativeName(wanted), critical=False)
                .add_extension(
                    x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                    critical=False,
                )
                .add_extension(
                    x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False
                )
                .sign(self._key, hashes.SHA256())
            )
            _write_private(
                key_path,
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.TraditionalOpenSSL,
                    serialization.NoEncryption(),
                ),
            )
            _write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))
            return ServerCert(cert_path, key_path, self.ca_path)

    def _fits(self, cert_path: Path, wanted: list[x509.GeneralName], exact: bool) -> bool:
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            have = set(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
        except (ValueError, x509.ExtensionNotFound):
            return False
        assert self._cert is not None
        return (
            cert.issuer == self._cert.subject
            and cert.not_valid_after_utc - RENEW_BEFORE > _now()
            and (set(wanted) == have if exact else set(wanted) <= have)
        )


_CAS: dict[Path, CertificateAuthority] = {}
_CAS_LOCK = threading.Lock()


def authority_for(data_dir: Path) -> CertificateAuthority:
    """The CA of a data directory (`<data_dir>/tls/`), one instance per process."""
    root = (Path(data_dir) / "tls").resolve()
    with _CAS_LOCK:
        ca = _CAS.get(root)
        if ca is None:
            ca = _CAS[root] = CertificateAuthority(root)
        return ca
