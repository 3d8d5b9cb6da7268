"""`strata serve | clock | bill | health | fsck | migrate` — the command line."""

from __future__ import annotations

import json
import os
import ssl
import sys
import urllib.request
from pathlib import Path
from typing import Any

import click

from strata import __version__
from strata.config import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_TLS_PORT,
    ENGINE_HOST_CHOICES,
    ConfigError,
    parse_tls_port,
    settings_from_env,
)


@click.group()
@click.version_option(__version__, prog_name="strata")
def cli() -> None:
    """Strata: S3, EBS, EFS, RDS, DynamoDB, ElastiCache and KMS on one local endpoint."""


@cli.command()
@click.option(
    "--host", default=DEFAULT_HOST, show_default=True, help="Address to bind (loopback by default)."
)
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int)
@click.option(
    "--tls-port",
    default=None,
    help=f"The HTTPS port ({DEFAULT_TLS_PORT}; 0 or off: none; also STRATA_TLS_PORT). Clients trust "
    "<data dir>/tls/ca.pem, e.g. AWS_CA_BUNDLE=<data dir>/tls/ca.pem.",
)
@click.option("--data-dir", default=".strata", show_default=True, type=click.Path(path_type=Path))
@click.option("--region", default=None, help="Default region (us-east-1).")
@click.option(
    "--hostname",
    "hostnames",
    multiple=True,
    help="An extra host name clients use to reach Strata (repeatable; also STRATA_HOSTNAMES=a,b). "
    "Requests for other names are refused (DNS-rebinding defence).",
)
@click.option("--no-fsync", is_flag=True, help="Skip fsync (faster, survives kill -9 but not power loss).")
@click.option("--quiet", is_flag=True, help="No access log.")
@click.option(
    "--cpu-affinity",
    default=None,
    help="Where the request-serving threads run: auto (one CPU, the default), off, or a CPU number.",
)
@click.option(
    "--max-connections-per-ip",
    default=None,
    type=click.IntRange(min=1),
    help="Connections one client address may hold; more are refused with 503 (1024).",
)
@click.option(
    "--users",
    "users_file",
    default=None,
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="TOML file of accounts, root keys and IAM users (see README). Env: STRATA_USERS_FILE.",
)
@click.option(
    "--account-id",
    default=None,
    help="Account of the loopback test/test key (12 digits). Env: STRATA_ACCOUNT_ID.",
)
@click.option(
    "--s3-request-limits",
    is_flag=True,
    default=None,
    help="Answer 503 SlowDown above S3's request rates per prefix (3,500 writes, 5,500 reads a second). "
    "Env: STRATA_S3_REQUEST_LIMITS=on.",
)
@click.option(
    "--timings",
    type=click.Choice(["fast", "aws"]),
    default=None,
    help="fast (default): things take as long as the engines need; aws: failovers take the times AWS "
    "documents (RDS Multi-AZ 60 s, Aurora 30 s). Env: STRATA_TIMINGS.",
)
@click.option(
    "--metadata",
    default=None,
    help="postgresql://USER@HOST:PORT/DB: keep S3's, DynamoDB's, IAM's, KMS's, S3 Control's and the console's metadata, the meter, "
    "the clock and the scheduler's progress in this PostgreSQL database (created with LOCALE 'C'), "
    "shared by every gateway started with it; the engine services run on one of them at a time, the "
    "engine host, with their state under --blob-dir/engines (README). "
    "Env: STRATA_METADATA.",
)
@click.option(
    "--metadata-wait",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0),
    envvar="STRATA_METADATA_WAIT",
    help="With --metadata: seconds to wait at start-up for the PostgreSQL to be reachable (a "
    "failover in progress, a database starting after the gateways) before exiting with status 1; "
    "a wrong password or database fails at once. Env: STRATA_METADATA_WAIT.",
)
@click.option(
    "--blob-dir",
    default=None,
    type=click.Path(path_type=Path, file_okay=False),
    help="Directory of S3's object and part bytes (<dir>/s3; default: inside the data dir). "
    "Env: STRATA_BLOB_DIR.",
)
@click.option(
    "--advertise-url",
    default=None,
    help="With --metadata: the URL the other gateways forward RDS, ElastiCache, EC2/EBS, EFS, FIS, "
    "Application Auto Scaling and CloudWatch requests to while this gateway is the engine host "
    "(default http://<host>:<port>). Env: STRATA_ADVERTISE_URL.",
)
@click.option(
    "--engine-address",
    default=None,
    metavar="ADDRS/DEV",
    help="Serve RDS instance and Aurora writer endpoints and ElastiCache primary endpoints to other "
    "machines on this IPv4 address (advertised by Describe*, ports unchanged); DEV is the device "
    "it is (or will be) on, e.g. 10.0.0.50/eth0. A list or range (10.0.0.50,10.0.0.51/eth0, "
    "10.0.0.50-10.0.0.59/eth0) also serves Aurora reader/custom and ElastiCache reader and node "
    "endpoints, each loopback address on one further address. Env: STRATA_ENGINE_ADDRESS.",
)
@click.option(
    "--engine-host",
    type=click.Choice(ENGINE_HOST_CHOICES),
    default=None,
    help="With --metadata: whether this gateway may run RDS, ElastiCache, EC2/EBS, EFS, FIS, "
    "Application Auto Scaling and CloudWatch for all (the engine host, one at a time): any (default) "
    "takes them over when no gateway runs them; prefer: too, and any gateways leave a free host's "
    "place to a live prefer one for 3 s first; never: only forwards their requests (this machine "
    "needs no engine binaries, root or nftables; no --engine-address or --advertise-url). "
    "Env: STRATA_ENGINE_HOST.",
)
def serve(
    host: str,
    port: int,
    tls_port: str | None,
    data_dir: Path,
    region: str | None,
    hostnames: tuple[str, ...],
    no_fsync: bool,
    quiet: bool,
    cpu_affinity: str | None,
    max_connections_per_ip: int | None,
    users_file: Path | None,
    account_id: str | None,
    s3_request_limits: bool | None,
    timings: str | None,
    metadata: str | None,
    metadata_wait: float,
    blob_dir: Path | None,
    advertise_url: str | None,
    engine_address: str | None,
    engine_host: str | None,
) -> None:
    """Start the server."""
    from strata.server import serve as run

    if cpu_affinity is not None and cpu_affinity not in ("auto", "off") and not cpu_affinity.isdigit():
        raise click.BadParameter("auto, off or a CPU number", param_hint="--cpu-affinity")
    try:
        settings = settings_from_env(
            host=host,
            port=port,
            data_dir=data_dir,
            region=region,
            cpu_affinity=cpu_affinity,
            max_connections_per_ip=max_connections_per_ip,
            users_file=users_file,
            account_id=account_id,
            s3_request_limits=s3_request_limits or None,
            timings=timings,
            metadata=metadata,
            blob_dir=blob_dir,
            advertise_url=advertise_url,
            engine_address=engine_address,
            engine_host=engine_host,
        )
        if tls_port is not None:  # (an override of None would be skipped: "off" is set here)
            settings.tls_port = parse_tls_port(tls_port)
        settings.check_ports()
        settings.hostnames = (*settings.hostnames, *hostnames)
        settings.fsync = not no_fsync
        settings.access_log = not quiet
        settings.all_credentials()
        if settings.users_file is not None:
            from strata.auth.users_file import load_users_file

            load_users_file(settings.users_file)  # a broken file stops start-up with its reason
        if settings.metadata is not None:
            _check_metadata_database(settings.metadata, wait=metadata_wait)
    except ConfigError as e:
        raise click.ClickException(str(e)) from e
    run(settings)


def _check_metadata_database(url: str, wait: float = 0) -> None:
    """Refuse to start when `--metadata` names a database Strata cannot use (unreachable, wrong
    password, or not ordering text by code point), rather than serve S3 as a failed service.
    An unreachable one is waited for up to `wait` seconds (strata.storage.pg_wait: a failover)."""
    import psycopg

    from strata.config import redact_url
    from strata.storage.pg_wait import unreachable, wait_for
    from strata.storage.postgres import ORDER_CHECK

    def order_check() -> tuple | None:
        with psycopg.connect(url, connect_timeout=15) as c:
            return c.execute(ORDER_CHECK).fetchone()

    def say(line: str) -> None:
        click.echo(f"strata: --metadata: {line}", err=True)

    try:
        row = wait_for(order_check, f"the metadata database {redact_url(url)}", wait, say)
    except psycopg.Error as e:
        waited = f" (still unreachable after {wait:g} s)" if wait and unreachable(e) else ""
        raise ConfigError(f"cannot use the metadata database {redact_url(url)}{waited}: {e}") from e
    if not row or not row[0]:
        raise ConfigError(
            f"the metadata database {redact_url(url)} does not order text by code point (S3 listings "
            "would be out of order): create it with CREATE DATABASE ... TEMPLATE template0 LOCALE 'C'"
        )


def _admin(endpoint: str, path: str, body: dict | None = None, timeout: float = 30) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(endpoint.rstrip("/") + path, data=data, method="POST" if data else "GET")
    req.add_header("content-type", "application/json")
    try:
        # An https endpoint is verified against AWS_CA_BUNDLE when set (Strata's CA, as for the AWS CLI).
        context = ssl.create_default_context(cafile=os.environ.get("AWS_CA_BUNDLE") or None)
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as e:
        raise click.ClickException(e.read().decode(errors="replace")) from e
    except OSError as e:
        raise click.ClickException(f"cannot reach Strata at {endpoint}: {e}") from e


CATCH_UP_TIMEOUT = 3600.0  # seconds `strata clock advance` waits for the rules to catch up

_endpoint_option = click.option(
    "--endpoint",
    envvar="AWS_ENDPOINT_URL",
    default=f"http://{DEFAULT_HOST}:{DEFAULT_PORT}",
    show_default=True,
)


@cli.group()
def clock() -> None:
    """Show or move the simulated clock of a running server."""


@clock.command("show")
@_endpoint_option
def clock_show(endpoint: str) -> None:
    click.echo(json.dumps(_admin(endpoint, "/_strata/clock"), indent=2))


@clock.command("advance")
@click.argument("duration")
@_endpoint_option
def clock_advance(duration: str, endpoint: str) -> None:
    """Move time forward, e.g. `strata clock advance 30d` (units s, m, h, d, w).

    Answers once every time-driven rule (lifecycle, TTL ...) has caught up, with what each did
    under "ran" (a year over millions of objects takes a while: hence the long timeout).
    """
    click.echo(
        json.dumps(_admin(endpoint, "/_strata/clock", {"advance": duration}, CATCH_UP_TIMEOUT), indent=2)
    )


@clock.command("set")
@click.argument("when")
@_endpoint_option
def clock_set(when: str, endpoint: str) -> None:
    """Move time forward to an ISO-8601 instant (answers as `advance` does)."""
    click.echo(json.dumps(_admin(endpoint, "/_strata/clock", {"set": when}, CATCH_UP_TIMEOUT), indent=2))


@cli.group()
def ebs() -> None:
    """EBS volumes of a running server as block devices."""


@ebs.command("nbd-uri")
@click.argument("volume_id")
@_endpoint_option
def ebs_nbd_uri(volume_id: str, endpoint: str) -> None:
    """Print the NBD URI of an attached volume (for qemu-img, nbdcopy, nbd-client)."""
    click.echo(_admin(endpoint, f"/_strata/ebs/nbd?volume={volume_id}")["uri"])


@cli.command()
@click.option(
    "--from", "start", default=None, help="Start (ISO date or time; default: the simulated month's first)."
)
@click.option("--to", "end", default=None, help="End (ISO date or time; default: now, simulated).")
@click.option(
    "--by", type=click.Choice(["service", "resource", "usage-type"]), default="usage-type", show_default=True
)
@click.option("--json", "as_json", is_flag=True, help="The bill as JSON (what GET /_strata/bill answers).")
@click.option("--csv", "as_csv", is_flag=True, help="The bill as CSV.")
@click.option(
    "--chart",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write an SVG of cost over time per service.",
)
@_endpoint_option
def bill(
    start: str | None,
    end: str | None,
    by: str,
    as_json: bool,
    as_csv: bool,
    chart: Path | None,
    endpoint: str,
) -> None:
    """What the usage of a span of simulated time would cost on AWS (us-east-1 list prices)."""
    from urllib.parse import urlencode

    from strata.sim import bill_format
    from strata.sim.chart import cost_chart

    wanted = {"from": start, "to": end, "by": by, "daily": "1" if chart else None}
    query = urlencode({k: v for k, v in wanted.items() if v})
    doc = _admin(endpoint, f"/_strata/bill?{query}", timeout=CATCH_UP_TIMEOUT)
    if chart is not None:
        chart.write_text(cost_chart(doc.pop("daily")))
    if as_json:
        click.echo(json.dumps(doc, indent=2))
    elif as_csv:
        click.echo(bill_format.as_csv(doc), nl=False)
    else:
        click.echo(bill_format.as_text(doc))


@cli.command()
@_endpoint_option
def health(endpoint: str) -> None:
    """Print the server's health document."""
    click.echo(json.dumps(_admin(endpoint, "/_strata/health"), indent=2))


@cli.command()
@click.option("--data-dir", default=".strata", show_default=True, type=click.Path(path_type=Path))
@click.option(
    "--repair", is_flag=True, help="Remove orphan blobs, temp files and parts of uploads that are gone."
)
@click.option("--hashes", is_flag=True, help="Also read every blob and compare its MD5 with the ETag (slow).")
@click.option("--json", "as_json", is_flag=True, help="The report as JSON.")
@click.option(
    "--metadata",
    default=None,
    help="postgresql://...: check what gateways started with it share (S3 and DynamoDB against "
    "--blob-dir, the engine services' files under --blob-dir/engines) instead of a data dir; they "
    "may keep running.",
)
@click.option("--blob-dir", default=None, type=click.Path(path_type=Path, file_okay=False))
def fsck(
    data_dir: Path, repair: bool, hashes: bool, as_json: bool, metadata: str | None, blob_dir: Path | None
) -> None:
    """Check a data dir with the server stopped (metadata against blobs, SQLite integrity, temp files).

    With --metadata and --blob-dir: the layout several gateways share, while they run (a blob or
    file a running gateway may still be writing is left alone).
    Exits 1 when a problem is left (after --repair: one it may not fix, e.g. a missing blob).
    """
    from strata.fsck import check_data_dir, check_shared
    from strata.storage.fsck import users_of

    if metadata is not None or blob_dir is not None:
        if metadata is None or blob_dir is None:
            raise click.UsageError("--metadata and --blob-dir go together")
        try:
            _check_metadata_database(metadata)
        except ConfigError as e:
            raise click.ClickException(str(e)) from e
        report = check_shared(metadata, blob_dir, repair=repair, hashes=hashes)
        _print_report(report, as_json)
        return
    if not data_dir.is_dir():
        raise click.ClickException(f"no data dir at {data_dir}")
    users = [p for p in users_of(data_dir) if p != os.getpid()]
    if users and repair:
        raise click.ClickException(
            f"{data_dir} is in use (pid {', '.join(map(str, users))}): stop the server first"
        )
    if users:
        click.echo(
            f"warning: {data_dir} is in use (pid {', '.join(map(str, users))}); writes in flight may show",
            err=True,
        )
    _print_report(check_data_dir(data_dir, repair=repair, hashes=hashes, live=bool(users)), as_json)


def _print_report(report: Any, as_json: bool) -> None:
    """A fsck report, and exit status 1 while a problem is left."""
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for name, result in report.databases.items():
            click.echo(f"database {name}: {result}")
        click.echo("checked " + ", ".join(f"{v} {k}" for k, v in report.checked.items()))
        for line in report.problems():
            click.echo(line)
        for note in report.notes:
            click.echo(f"note: {note}")
        click.echo("clean" if not report.findings else f"{len(report.findings)} problems: {report.counts()}")
    if not report.ok:
        sys.exit(1)


@cli.command()
@click.option("--data-dir", default=".strata", show_default=True, type=click.Path(path_type=Path))
@click.option("--metadata", required=True, help="postgresql://USER@HOST:PORT/DB: the gateways' database.")
@click.option(
    "--blob-dir",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="The gateways' shared directory of object bytes.",
)
@click.option(
    "--allow-nonempty", is_flag=True, help="Add to a database or blob dir that holds state already."
)
def migrate(data_dir: Path, metadata: str, blob_dir: Path, allow_nonempty: bool) -> None:
    """Copy a data dir's S3, DynamoDB, IAM/STS, KMS, S3 Control, console sign-ins, meter and clock
    into PostgreSQL and a blob dir, for several gateways (`serve --metadata ... --blob-dir ...`), and
    its engine services' state into <blob dir>/engines, where the engine host runs them. The server
    must be stopped; the data dir is only read. Exits 1 when refused (nothing of the rows copied
    then). S3 objects whose key holds NUL (refused on PostgreSQL) stay behind, each one listed."""
    from strata.migrate import MigrateError
    from strata.migrate import migrate as run
    from strata.storage.shared import ON_ENGINE_HOST

    try:
        _check_metadata_database(metadata)
        done = run(data_dir, metadata, blob_dir, allow_nonempty=allow_nonempty)
    except (ConfigError, MigrateError) as e:
        raise click.ClickException(str(e)) from e
    for copied in done.stores:
        rows = ", ".join(f"{n} {t}" for t, n in copied.rows.items() if n)
        click.echo(f"{copied.store}: {copied.total} rows" + (f" ({rows})" if rows else ""))
        for why in copied.left_out:
            click.echo(f"not migrated: {copied.store}: {why}")
    for what, n in done.files.items():
        click.echo(f"{what}: {n} files")
    click.echo(f"files: {done.linked} hard-linked, {done.copied} copied")
    for note in done.notes:
        click.echo(f"note: {note}")
    if done.engines:
        click.echo(
            f"engines: {', '.join(done.engines)} moved to {blob_dir}/engines (the engine host runs them)"
        )
    else:
        why_not = done.engines_left or "the data dir holds no state of theirs"
        for service, why in ON_ENGINE_HOST.items():
            click.echo(f"not migrated: {service}: {why} ({why_not})")


def main() -> None:
    cli(prog_name="strata")


if __name__ == "__main__":
    sys.exit(main())
