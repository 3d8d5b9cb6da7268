"""`strata serve | clock | health` — the command line."""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

import click

from strata import __version__
from strata.config import DEFAULT_HOST, DEFAULT_PORT, ConfigError, settings_from_env


@click.group()
@click.version_option(__version__, prog_name="strata")
def cli() -> None:
    """Strata: S3, EBS, EFS, RDS, DynamoDB, ElastiCache and KMS on one local endpoint."""


@cli.command()
@click.option(
    "--host", default=DEFAULT_HOST, show_default=True, help="Address to bind (loopback by default)."
)
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int)
@click.option("--data-dir", default=".strata", show_default=True, type=click.Path(path_type=Path))
@click.option("--region", default=None, help="Default region (us-east-1).")
@click.option("--no-fsync", is_flag=True, help="Skip fsync (faster, survives kill -9 but not power loss).")
@click.option("--quiet", is_flag=True, help="No access log.")
@click.option(
    "--cpu-affinity",
    default=None,
    help="Where the request-serving threads run: auto (one CPU, the default), off, or a CPU number.",
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
def serve(
    host: str,
    port: int,
    data_dir: Path,
    region: str | None,
    no_fsync: bool,
    quiet: bool,
    cpu_affinity: str | None,
    users_file: Path | None,
    account_id: str | None,
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
            users_file=users_file,
            account_id=account_id,
        )
        settings.fsync = not no_fsync
        settings.access_log = not quiet
        settings.all_credentials()
        if settings.users_file is not None:
            from strata.auth.users_file import load_users_file

            load_users_file(settings.users_file)  # a broken file stops start-up with its reason
    except ConfigError as e:
        raise click.ClickException(str(e)) from e
    run(settings)


def _admin(endpoint: str, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(endpoint.rstrip("/") + path, data=data, method="POST" if data else "GET")
    req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as e:
        raise click.ClickException(e.read().decode(errors="replace")) from e
    except OSError as e:
        raise click.ClickException(f"cannot reach Strata at {endpoint}: {e}") from e


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
    """Move time forward, e.g. `strata clock advance 30d` (units s, m, h, d, w)."""
    click.echo(json.dumps(_admin(endpoint, "/_strata/clock", {"advance": duration}), indent=2))


@clock.command("set")
@click.argument("when")
@_endpoint_option
def clock_set(when: str, endpoint: str) -> None:
    """Move time forward to an ISO-8601 instant."""
    click.echo(json.dumps(_admin(endpoint, "/_strata/clock", {"set": when}), indent=2))


@cli.command()
@_endpoint_option
def health(endpoint: str) -> None:
    """Print the server's health document."""
    click.echo(json.dumps(_admin(endpoint, "/_strata/health"), indent=2))


def main() -> None:
    cli(prog_name="strata")


if __name__ == "__main__":
    sys.exit(main())
