"""The one settings object every part of Strata reads.

Everything configurable lives here with its default, so a reader finds every knob in one file.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4566
# The HTTPS listener beside the plain one (LocalStack users know 4566; 4567 is the next port).
DEFAULT_TLS_PORT = 4567
DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT = "000000000000"
DEFAULT_ACCESS_KEY = "test"
DEFAULT_SECRET_KEY = "test"
# A host name that resolves to 127.0.0.1 through public DNS, so virtual-hosted S3 works with no
# /etc/hosts edits: <bucket>.s3.localhost.localstack.cloud. Plain `localhost` also works for
# clients that resolve *.localhost to loopback (curl, browsers).
DEFAULT_S3_HOSTS = (
    "s3.localhost.localstack.cloud",
    "s3.localhost",
    "s3.amazonaws.com",
    "s3.127.0.0.1.nip.io",
)


class ConfigError(Exception):
    """The settings cannot be used as given (e.g. a public bind with default credentials)."""


MAX_ENGINE_ADDRESSES = 256  # one `--engine-address` list or range (a /24's worth)
# `--engine-host`: whether a gateway of several may run the engine services (strata.gateway.engine_host)
ENGINE_HOST_ANY, ENGINE_HOST_PREFER, ENGINE_HOST_NEVER = "any", "prefer", "never"
ENGINE_HOST_CHOICES = (ENGINE_HOST_ANY, ENGINE_HOST_PREFER, ENGINE_HOST_NEVER)
# The pool addresses given to loopback endpoints (Settings.engine_addresses_record)
ENGINE_ADDRESSES_RECORD = "engine-addresses.json"


@dataclass(frozen=True)
class EngineAddress:
    """Where other machines reach the engines (strata.engines.floating): an IPv4 address and the
    network device that holds it (or will, once this machine claims it).

    `pool`: more addresses on the same device (`--engine-address A,B,C/DEV` or `A-C/DEV`) for the
    endpoints that have a loopback address of their own (Aurora reader and custom endpoints,
    ElastiCache reader and node endpoints, EFS mount targets): each such loopback address gets one of them, recorded
    in `state` (a JSON file) so it keeps it across restarts (floating.public_host)."""

    address: str
    dev: str
    pool: tuple[str, ...] = ()
    state: str | None = None

    @property
    def addresses(self) -> tuple[str, ...]:
        """Every address of the option, the first (`address`) included: what `claim` takes."""
        return (self.address, *self.pool)


def _engine_ip(text: str, value: str) -> ipaddress.IPv4Address:
    try:
        ip = ipaddress.IPv4Address(text.strip())
    except ValueError:
        raise ConfigError(
            "the engine address must be IPv4 addresses (a list A,B,C or a range A-B) and their device "
            f"(10.0.0.50/eth0, 10.0.0.50,10.0.0.51/eth0 or 10.0.0.50-10.0.0.59/eth0), not {value!r}"
        ) from None
    if (
        ip.is_loopback
        or ip.is_unspecified
        or ip.is_multicast
        or ip.is_link_local
        or ip == ipaddress.IPv4Address("255.255.255.255")
    ):
        raise ConfigError(f"the engine address must be a unicast address other machines reach, not {ip}")
    return ip


def _engine_ips(text: str, value: str) -> list[ipaddress.IPv4Address]:
    """`A`, `A,B,C` or `A-B` (a range, both ends included): the addresses, in order."""
    if "-" in text and "," not in text:
        first, _, last = text.partition("-")
        lo, hi = _engine_ip(first, value), _engine_ip(last, value)
        if hi < lo:
            raise ConfigError(f"the engine address range {text!r} ends before it starts")
        if int(hi) - int(lo) >= MAX_ENGINE_ADDRESSES:
            raise ConfigError(
                f"the engine address range {text!r} has more than {MAX_ENGINE_ADDRESSES} addresses"
            )
        return [ipaddress.IPv4Address(n) for n in range(int(lo), int(hi) + 1)]
    ips = [_engine_ip(part, value) for part in text.split(",")]
    if len(set(ips)) != len(ips):
        raise ConfigError(f"the engine address list {text!r} names an address twice")
    if len(ips) > MAX_ENGINE_ADDRESSES:
        raise ConfigError(f"the engine address list has more than {MAX_ENGINE_ADDRESSES} addresses")
    return ips


def parse_engine_address(value: str) -> EngineAddress:
    """`ADDR/DEV` (`--engine-address 10.0.0.50/eth0`): a unicast IPv4 address other machines can
    reach (not loopback) and the device it is, or will be, on. ADDR may be a list (`A,B,C`) or a
    range (`A-B`): the first address serves the endpoints on 127.0.0.1 (each on its own port), the
    others are the pool of EngineAddress.pool."""
    text, _, dev = value.strip().partition("/")
    ips = _engine_ips(text, value)
    if not dev:
        raise ConfigError(f"the engine address needs the device it is on: {text}/DEV (e.g. {text}/eth0)")
    if len(dev) > 15 or "/" in dev or not dev.isprintable() or dev.strip() != dev:
        raise ConfigError(f"{dev!r} is not a network device name")
    return EngineAddress(str(ips[0]), dev, tuple(str(ip) for ip in ips[1:]))


@dataclass
class Settings:
    """Runtime settings; built once by the CLI (or a test fixture) and passed down explicitly."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    # The HTTPS listener (same bind address, same app; strata.gateway.https); None: no HTTPS.
    tls_port: int | None = DEFAULT_TLS_PORT
    data_dir: Path = field(default_factory=lambda: Path(".strata"))
    region: str = DEFAULT_REGION
    account_id: str = DEFAULT_ACCOUNT
    # Extra (access key, secret key) pairs; the default test/test pair is added only on loopback.
    credentials: dict[str, str] = field(default_factory=dict)
    s3_hosts: tuple[str, ...] = DEFAULT_S3_HOSTS
    # Extra names clients reach Strata by (Host header), each with its subdomains; loopback names,
    # IP addresses and the S3 names above are always accepted (strata.gateway.hosts).
    hostnames: tuple[str, ...] = ()
    # fsync blob files and SQLite commits; tests of crash safety rely on this being on.
    fsync: bool = True
    access_log: bool = True
    # "auto", "off" or a CPU number: where the request-serving threads run (strata.affinity).
    cpu_affinity: str = "auto"
    # Ports handed to engines (PostgreSQL, MariaDB, Redis, Memcached) and their stable endpoints.
    engine_port_range: tuple[int, int] = (45000, 47999)
    # The users file (accounts, root keys, IAM users): strata.auth.users_file. account_id is the
    # account of the test/test and STRATA_ACCESS_KEY_ID keys (--account-id, else the file's
    # default_account, else 000000000000).
    users_file: Path | None = None
    # Limits that AWS fixes but tests want small; services read them from here.
    limits: dict[str, int] = field(default_factory=dict)
    # HTTP client bounds (strata.gateway.http_limits): seconds for a request head to arrive, for a
    # stalled body, for an idle connection and for unread answers; connections per client address.
    # Environment: STRATA_HTTP_HEADER_TIMEOUT, ..._BODY_TIMEOUT, ..._IDLE_TIMEOUT, ..._SEND_TIMEOUT,
    # STRATA_MAX_CONNECTIONS_PER_IP.
    http_header_timeout: float = 60.0
    http_body_timeout: float = 60.0
    http_idle_timeout: float = 120.0
    http_send_timeout: float = 60.0
    max_connections_per_ip: int = 1024
    # S3 objects written to a bucket without a default-encryption configuration are encrypted
    # with SSE-S3, as AWS does since 2023. False (STRATA_S3_DEFAULT_ENCRYPTION=off) stores them in
    # plaintext and serves them zero-copy: a Strata deviation for benchmarks and old setups.
    s3_default_encryption: bool = True
    # S3's per-prefix request rates answered with 503 SlowDown above them (strata.sim.
    # request_limits): `--s3-request-limits` or STRATA_S3_REQUEST_LIMITS=on; off by default.
    s3_request_limits: bool = False
    # Durations of control-plane events (strata.sim.timings): "fast" (default) or "aws", AWS's
    # documented times (failovers, creation, modification); `--timings aws` or STRATA_TIMINGS=aws.
    timings: str = "fast"
    # Where shared metadata lives: None (embedded SQLite under data_dir), or a PostgreSQL database
    # (`--metadata postgresql://USER@HOST:PORT/DB`, STRATA_METADATA) so gateways can share it
    # (issue 22): S3, IAM, KMS, S3 Control, the meter, clock and scheduler (strata.server.share);
    # the services in strata.storage.shared.ON_ENGINE_HOST run on one gateway at a time, the engine
    # host, with their state under <blob_dir>/engines (strata.gateway.engine_host).
    metadata: str | None = None
    # Object and part bytes (`--blob-dir`, STRATA_BLOB_DIR; S3's go under <blob_dir>/s3); None:
    # inside the data dir.
    blob_dir: Path | None = None
    # With --metadata: the URL other gateways forward engine services' requests to while this
    # gateway is the engine host (`--advertise-url`, STRATA_ADVERTISE_URL; strata.gateway.engine_host).
    # None: http://<bind host>:<port> (`endpoint`).
    advertise_url: str | None = None
    # Where other machines reach the engines (`--engine-address ADDR/DEV`,
    # STRATA_ENGINE_ADDRESS; strata.engines.floating): RDS instance and Aurora writer endpoints and
    # ElastiCache primary endpoints are advertised and served on ADDR; the further addresses of a
    # list or range (A,B,C/DEV, A-B/DEV) serve the endpoints with loopback addresses of their own
    # (Aurora reader/custom, ElastiCache reader/nodes); None: loopback only.
    engine_address: str | None = None
    # With --metadata: whether this gateway may be the engine host (`--engine-host`,
    # STRATA_ENGINE_HOST; strata.gateway.engine_host): "any" takes the engines over when no host
    # runs them; "prefer" too, and "any" gateways leave a free lock to a live "prefer" one for a few
    # seconds first; "never" only forwards (needs nothing the engines need: the machine may lack
    # their binaries, root, nftables, the memory).
    engine_host: str = ENGINE_HOST_ANY

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()
        if self.metadata is not None:
            check_metadata_url(self.metadata)
        if self.blob_dir is not None:
            self.blob_dir = Path(self.blob_dir).resolve()
        if self.advertise_url is not None:
            check_advertise_url(self.advertise_url)
        check_engine_host(self)
        if self.engine_address is not None:
            dev = parse_engine_address(self.engine_address).dev  # refused at start, not at first use
            if not Path(f"/sys/class/net/{dev}").exists():
                raise ConfigError(f"no network device {dev!r} here (--engine-address ADDR/DEV)")

    @property
    def exposed_engines(self) -> EngineAddress | None:
        """The engine address and its device, or None (engines on loopback only)."""
        if self.engine_address is None:
            return None
        parsed = parse_engine_address(self.engine_address)
        return replace(parsed, state=str(self.engine_addresses_record)) if parsed.pool else parsed

    @property
    def engine_addresses_record(self) -> Path:
        """Where the pool addresses given to loopback endpoints are recorded (floating.public_host).
        With --metadata it lives with the engines' state (`engines_dir`, shared by every gateway),
        so a gateway taking the engines over serves each endpoint on the pool address clients
        know; otherwise in the data dir."""
        return (self.engines_dir if self.metadata else self.data_dir) / ENGINE_ADDRESSES_RECORD

    @property
    def is_loopback(self) -> bool:
        if self.host in ("localhost",):
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def _dial_host(self) -> str:
        return "127.0.0.1" if self.host in ("0.0.0.0", "localhost") else self.host

    @property
    def endpoint(self) -> str:
        return f"http://{self._dial_host}:{self.port}"

    @property
    def https_endpoint(self) -> str | None:
        """The HTTPS endpoint, or None when the HTTPS listener is off."""
        return None if self.tls_port is None else f"https://{self._dial_host}:{self.tls_port}"

    def all_credentials(self) -> dict[str, str]:
        """The root keys of the test account Strata accepts (the users file adds more); refuses the
        well-known default off loopback."""
        creds = dict(self.credentials)
        if self.is_loopback:
            creds.setdefault(DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY)
        elif not creds and self.users_file is None:
            raise ConfigError(
                f"refusing to bind {self.host}: the default test/test credentials are only accepted on "
                "loopback. Set STRATA_ACCESS_KEY_ID and STRATA_SECRET_ACCESS_KEY, or give a users file "
                "(--users FILE or STRATA_USERS_FILE)."
            )
        return creds

    def check_ports(self) -> None:
        """Refuse an HTTPS port equal to the HTTP port (both listeners share the bind address)."""
        if self.tls_port is not None and self.tls_port == self.port:
            raise ConfigError(
                f"the HTTPS port (--tls-port {self.tls_port}) must differ from --port {self.port}"
            )

    def limit(self, name: str, default: int) -> int:
        """A service limit, overridable per deployment (e.g. STRATA_LIMIT_S3_MIN_PART_SIZE=5)."""
        env = os.environ.get(f"STRATA_LIMIT_{name.upper()}")
        if env is not None:
            return int(env)
        return self.limits.get(name, default)

    @property
    def engines_dir(self) -> Path:
        """Where the engine host keeps the engine services' state with --metadata (shared storage
        every gateway sees: a new host restarts the engines from it)."""
        return (self.blob_dir or self.data_dir) / "engines"

    def service_dir(self, service: str) -> Path:
        path = self.data_dir / service
        path.mkdir(parents=True, exist_ok=True)
        return path


def settings_from_env(**overrides: object) -> Settings:
    """Settings from STRATA_* environment variables, then explicit overrides (CLI flags)."""
    s = Settings()
    if "STRATA_DATA_DIR" in os.environ:
        s.data_dir = Path(os.environ["STRATA_DATA_DIR"]).resolve()
    if "STRATA_CPU_AFFINITY" in os.environ:
        s.cpu_affinity = os.environ["STRATA_CPU_AFFINITY"]
    if os.environ.get("STRATA_HOSTNAMES"):
        s.hostnames = tuple(n.strip() for n in os.environ["STRATA_HOSTNAMES"].split(",") if n.strip())
    if "STRATA_TLS_PORT" in os.environ:
        s.tls_port = parse_tls_port(os.environ["STRATA_TLS_PORT"])
    if "STRATA_REGION" in os.environ:
        s.region = os.environ["STRATA_REGION"]
    for name in ("header", "body", "idle", "send"):
        value = os.environ.get(f"STRATA_HTTP_{name.upper()}_TIMEOUT")
        if value is not None:
            setattr(s, f"http_{name}_timeout", _positive(f"STRATA_HTTP_{name.upper()}_TIMEOUT", value))
    if "STRATA_MAX_CONNECTIONS_PER_IP" in os.environ:
        value = os.environ["STRATA_MAX_CONNECTIONS_PER_IP"]
        s.max_connections_per_ip = int(_positive("STRATA_MAX_CONNECTIONS_PER_IP", value))
    if "STRATA_S3_DEFAULT_ENCRYPTION" in os.environ:
        value = os.environ["STRATA_S3_DEFAULT_ENCRYPTION"].strip().lower()
        s.s3_default_encryption = value not in ("off", "0", "no", "false", "none")
    if "STRATA_S3_REQUEST_LIMITS" in os.environ:
        value = os.environ["STRATA_S3_REQUEST_LIMITS"].strip().lower()
        s.s3_request_limits = value in ("on", "1", "yes", "true")
    if "STRATA_TIMINGS" in os.environ:
        value = os.environ["STRATA_TIMINGS"].strip().lower()
        if value not in ("fast", "aws"):
            raise ConfigError(f"STRATA_TIMINGS must be fast or aws, not {value!r}")
        s.timings = value
    if os.environ.get("STRATA_METADATA"):
        s.metadata = os.environ["STRATA_METADATA"]
    if os.environ.get("STRATA_ENGINE_HOST"):
        s.engine_host = os.environ["STRATA_ENGINE_HOST"].strip().lower()
    if os.environ.get("STRATA_ENGINE_ADDRESS"):
        s.engine_address = os.environ["STRATA_ENGINE_ADDRESS"]
    if os.environ.get("STRATA_BLOB_DIR"):
        s.blob_dir = Path(os.environ["STRATA_BLOB_DIR"])
    if os.environ.get("STRATA_ADVERTISE_URL"):
        s.advertise_url = os.environ["STRATA_ADVERTISE_URL"]
    if os.environ.get("STRATA_USERS_FILE"):
        s.users_file = Path(os.environ["STRATA_USERS_FILE"])
    if os.environ.get("STRATA_ACCOUNT_ID"):
        s.account_id = os.environ["STRATA_ACCOUNT_ID"]
    key, secret = os.environ.get("STRATA_ACCESS_KEY_ID"), os.environ.get("STRATA_SECRET_ACCESS_KEY")
    if key and secret:
        s.credentials[key] = secret
    account_given = "STRATA_ACCOUNT_ID" in os.environ or overrides.get("account_id") is not None
    for name, given in overrides.items():
        if given is not None:
            setattr(s, name, given)
    s.__post_init__()
    if not s.account_id.isdigit() or len(s.account_id) != 12:
        raise ConfigError(f"the account id must be 12 digits, not {s.account_id!r}")
    if s.users_file is not None and not account_given:
        from strata.auth.users_file import load_users_file

        default = load_users_file(s.users_file).default_account
        if default:
            s.account_id = default
    return s


def check_advertise_url(url: str) -> None:
    """`--advertise-url`: http://HOST:PORT, where the other gateways reach this one's HTTP port."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise ConfigError(f"the advertise URL is not a URL: {e}") from e
    if parts.scheme != "http" or not parts.hostname or port is None or parts.path not in ("", "/"):
        raise ConfigError(
            f"the advertise URL must be http://HOST:PORT (this gateway's HTTP port), not {url!r}"
        )


def check_engine_host(settings: Settings) -> None:
    """`--engine-host`: one of ENGINE_HOST_CHOICES, and only where it means something: with
    --metadata (without it this one gateway runs every service), and `never` without the options
    that only the engine host uses (a setting taken and then ignored would mislead)."""
    value = settings.engine_host
    if value not in ENGINE_HOST_CHOICES:
        raise ConfigError(
            f"the engine host setting (--engine-host, STRATA_ENGINE_HOST) must be any, prefer or never, not {value!r}"
        )
    if value != ENGINE_HOST_ANY and settings.metadata is None:
        raise ConfigError(
            f"--engine-host {value} needs --metadata: without it this one gateway runs every "
            "service, the engine services too (there is no other gateway to host or forward to)"
        )
    if value == ENGINE_HOST_NEVER:
        for option, given in (
            ("--engine-address", settings.engine_address),
            ("--advertise-url", settings.advertise_url),
        ):
            if given is not None:
                raise ConfigError(
                    f"{option} is used only while this gateway is the engine host, and with "
                    "--engine-host never it never is: drop one of the two"
                )


def check_metadata_url(url: str) -> None:
    """`--metadata`: only postgresql://[USER[:PASSWORD]@]HOST[:PORT]/DB (libpq's URL) is taken."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is not a number
    except ValueError as e:
        raise ConfigError(f"the metadata URL is not a URL: {e}") from e
    if parts.scheme != "postgresql":
        raise ConfigError(
            f"the metadata URL must be postgresql://USER@HOST:PORT/DB, not {redact_url(url)!r} "
            "(only PostgreSQL is supported; leave --metadata out for the embedded SQLite)"
        )
    if not parts.hostname or not parts.path.strip("/") or port == 0:
        raise ConfigError(
            f"the metadata URL must name a host and a database (postgresql://USER@HOST:PORT/DB), "
            f"not {redact_url(url)!r}"
        )


def redact_url(url: str) -> str:
    """A URL fit for logs and errors: its password replaced by ***."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rsplit("@", 1)
        user = netloc[0].split(":", 1)[0]
        return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))
    except ValueError:
        return "<unparsable URL>"


def parse_tls_port(value: str) -> int | None:
    """`--tls-port` / STRATA_TLS_PORT: a port number, or 0 / `off` for no HTTPS listener."""
    value = value.strip().lower()
    if value in ("off", "0", "no", "false", "none"):
        return None
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ConfigError(f"the HTTPS port must be a port number (1-65535), 0 or off, not {value!r}")
    return int(value)


def _positive(name: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not 0 < number < float("inf"):
        raise ConfigError(f"{name} must be a positive number, not {value!r}")
    return number
