"""MariaDB nodes (Debian `mariadb-server` + `mariadb-backup`): the MySQL-family engine of RDS.

Same shape as `strata.engines.postgres.PgNode`, with MariaDB's own machinery underneath:
- binary log (ROW, GTID) written to the instance's archive dir: replication and point-in-time
  restore both read it;
- base backups / snapshots: `mariadb-backup --backup` + `--prepare` (a ready-to-start datadir);
- read replica / standby: a base backup of the source, then `CHANGE MASTER TO ... MASTER_USE_GTID`;
  replicas run `read_only` (the master user has RDS's privileges, `MASTER_PRIVILEGES`: no SUPER,
  READ_ONLY ADMIN or FILE);
- Multi-AZ: semi-synchronous replication (commits wait for the standby's acknowledgement);
- point-in-time: restore the backup, then replay the binlog with `mariadb-binlog --stop-datetime`.

Strata reaches a node as MariaDB `root` over a private unix socket (unix_socket auth: only the OS
user running Strata); clients use TCP on loopback as the master user.

When Strata is root each node runs as an OS account of its own (`node_user`: own uid and primary
group, made with the node and removed with it), owning its directory (mode 0700): a master user who
gets past MASTER_PRIVILEGES (the known gap there) and writes files through the server
(`SET GLOBAL general_log_file`) can write only where its own node can, never into another
instance's datadir, configuration or socket. The binlog archive an instance's (or a cluster's)
nodes share is Strata's, writable by their group only (`archive_group`), each node's binlogs its own.
"""

from __future__ import annotations

import getpass
import grp
import logging
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pymysql

from strata.engines.process import (
    EngineError,
    EngineProcess,
    ProcessSpec,
    adopt_tree,
    chown_tree,
    effective_user,
    ensure_group,
    ensure_node_user,
    remove_group_if_unused,
    remove_node_user,
    run_as,
    running_as_root,
    wait_until,
    write_private,
)
from strata.engines.socket_paths import path_digest, short_tmp_path

log = logging.getLogger("strata.engines")

REPL_USER = "strata_repl"
USER_PARAMS_MARK = "# parameter group:"
ER_PLUGIN_INSTALLED = 1968  # INSTALL SONAME of a plugin already loaded
# Written while a FIS fault holds this replica's apply back (set_apply_delay). MariaDB keeps
# MASTER_DELAY across restarts; faults end with the process, so start() lifts it when this exists.
FAULT_DELAY = "fault-apply-delay"
# The plugins a node can load: those Strata's option table names (rds/options.py). A node's
# plugin_dir holds links to these only, so INSTALL SONAME by the master user (who has INSERT on
# mysql.plugin, as on RDS) cannot load FederatedX (connections to other engines' ports from the
# engine's own account), file_key_management, auth_pam or any other library of the package.
LOADABLE_PLUGINS = ("server_audit",)
SYSTEM_PLUGIN_DIR = Path("/usr/lib/mysql/plugin")  # Debian's mariadb-server
# The modes the server makes its files and directories with (its default lets its group write):
# its own only, the binlogs in an archive shared with other nodes included.
PRIVATE_MODES = {"UMASK": "0600", "UMASK_DIR": "0700"}
# The master user's privileges on RDS for MariaDB (AWS's "Master user account privileges" table):
# no SUPER, FILE, SHUTDOWN, READ_ONLY ADMIN; so no reading or writing server files (LOAD DATA
# INFILE, SELECT ... INTO OUTFILE), no stopping the server, no leaving read-only on a replica.
# Known gap: stock MariaDB (10.11) cannot hold a user with CREATE USER, or with UPDATE on the mysql
# schema and RELOAD, to these: RENAME USER / ALTER USER of Strata's own root account, or UPDATE
# mysql.global_priv + FLUSH PRIVILEGES, gives ALL PRIVILEGES. RDS's server is patched against it.
# Contained here (Strata as root): the node's own OS account (`node_user`) writes only its own files.
MASTER_PRIVILEGES = (
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "CREATE",
    "DROP",
    "RELOAD",
    "PROCESS",
    "REFERENCES",
    "INDEX",
    "ALTER",
    "SHOW DATABASES",
    "CREATE TEMPORARY TABLES",
    "LOCK TABLES",
    "EXECUTE",
    "REPLICATION CLIENT",
    "CREATE VIEW",
    "SHOW VIEW",
    "CREATE ROUTINE",
    "ALTER ROUTINE",
    "CREATE USER",
    "EVENT",
    "TRIGGER",
    "REPLICATION SLAVE",
)


def node_user(root: Path) -> str:
    """The OS account of the node in `root` (when Strata is root): one per node, named by its
    directory so that a restarted Strata finds it again."""
    return f"strata-my-{path_digest(root)}"


def archive_group(archive: Path) -> str:
    """The group of the nodes sharing the binlog archive `archive` (an instance's or a cluster's)."""
    return f"strata-mya-{path_digest(archive)}"


def drop_node_account(root: Path, archive: Path | None, binlog_base: str) -> None:
    """Remove a stopped node's account (and its archive's group once no node is in it). Its binlogs
    left in the archive, and the archive once its group is gone, go to Strata's own account first,
    so a later account given the same id gets nothing of them. Failures are logged, not raised:
    the node itself is gone."""
    if not running_as_root():
        return
    try:
        if archive is not None and archive.is_dir():
            for f in archive.glob(f"{binlog_base}.*"):
                os.chown(f, 0, 0, follow_symlinks=False)
        remove_node_user(node_user(root))
        if archive is not None and remove_group_if_unused(archive_group(archive)) and archive.is_dir():
            os.chown(archive, 0, 0)
    except (OSError, EngineError) as e:
        log.warning("could not remove the account of the MariaDB node in %s: %s", root, e)


def binary(name: str) -> str:
    for d in ("/usr/sbin", "/usr/bin"):
        if Path(d, name).exists():
            return str(Path(d, name))
    found = shutil.which(name)
    if not found:
        raise EngineError(f"{name} is not installed (Debian packages mariadb-server, mariadb-backup)")
    return found


def mariadb_version() -> str:
    out = subprocess.run([binary("mariadbd"), "--version"], capture_output=True, text=True).stdout
    m = re.search(r"Ver (\d+\.\d+\.\d+)", out)
    if not m:
        raise EngineError(f"cannot read the MariaDB version from {out!r}")
    return m.group(1)


class MariaNode:
    """One MariaDB server: `root` holds `data/`, `my.cnf`, the pidfile and the log."""

    def __init__(self, root: Path, port: int, superuser: str, archive_dir: Path | None = None) -> None:
        self.root = Path(root)
        self.datadir = self.root / "data"
        self.port = port
        self.superuser = superuser
        self.archive_dir = archive_dir
        self.socket = short_tmp_path(self.root, "my", ".sock")
        self.user = node_user(self.root)
        self.cnf = self.root / "my.cnf"
        self._pending_replay: tuple[Path, str | None, str] | None = None
        self.proc = EngineProcess(
            ProcessSpec(
                name="mariadbd",
                run_dir=self.root,
                user=self.user,
                match=str(self.cnf),
                extra_env=dict(PRIVATE_MODES),
                stop_signal=signal.SIGTERM,
                death_signal=signal.SIGTERM,
                argv=[binary("mariadbd"), f"--defaults-file={self.cnf}"],
            )
        )

    @property
    def slow_log(self) -> Path:
        """Where the slow query log goes when the parameter group turns it on (RDS lists it)."""
        return self.root / "mysql-slowquery.log"

    @property
    def general_log(self) -> Path:
        return self.root / "mysql-general.log"

    @property
    def binlog_base(self) -> str:
        return f"{self.root.parent.name}-{self.root.name}-bin"  # unique in a shared cluster archive

    # -- creation ----------------------------------------------------------------------------------

    def _account(self) -> None:
        """Make the node's account (and its archive's group) unless they exist; when root only."""
        if not running_as_root():
            return
        groups: tuple[str, ...] = ()
        if self.archive_dir is not None:
            ensure_group(archive_group(self.archive_dir))
            groups = (archive_group(self.archive_dir),)
        ensure_node_user(self.user, self.root, groups)

    def _own_files(self) -> None:
        """The node's directory its own, private (0700); the archive Strata's, writable by its
        nodes' group only (setgid: their binlogs are in it; sticky: no node removes another's
        binlogs), this node's binlogs its own. When root only."""
        if not running_as_root():
            return
        for d in (self.root, self.datadir):
            if d.is_dir():
                os.chmod(d, 0o700)
        # Strata's own, never the node's (a whole node directory was once handed over): the node's
        # configuration, its plugin directory (a library there is one it loads), its secret.
        for path in (self.cnf, self.root / "plugins", self.root / ".repl"):
            for p in [path, *(path.iterdir() if path.is_dir() and not path.is_symlink() else ())]:
                if p.exists() or p.is_symlink():
                    os.chown(p, 0, 0, follow_symlinks=False)
        if self.archive_dir is None or not self.archive_dir.is_dir():
            return
        gid = grp.getgrnam(archive_group(self.archive_dir)).gr_gid
        uid = pwd.getpwnam(self.user).pw_uid
        os.chown(self.archive_dir, 0, gid)
        os.chmod(self.archive_dir, 0o3770)
        for f in self.archive_dir.glob(f"{self.binlog_base}.*"):
            if f.lstat().st_uid != uid:
                os.chown(f, uid, gid, follow_symlinks=False)

    def initdb(self, password: str, params: dict[str, str] | None = None) -> None:
        self._prepare()
        self.write_config(params or {})
        run_as(
            [
                binary("mariadb-install-db"),
                f"--defaults-file={self.cnf}",
                "--skip-test-db",
                "--auth-root-authentication-method=socket",
                f"--auth-root-socket-user={getpass.getuser()}",
            ],
            effective_user(self.user),
            env={**os.environ, **PRIVATE_MODES},
            timeout=300,
        )
        # The bootstrap's Aria log describes tables it then closed cleanly; left in place, its
        # records confuse mariadb-backup's --prepare later ("Table file is corrupted").
        for f in self.datadir.glob("aria_log*"):
            f.unlink()
        self.start()
        repl_password = secrets.token_hex(16)
        write_private(self.root / ".repl", repl_password)
        u = self.superuser
        self.execute(
            f"CREATE USER '{u}'@'%%' IDENTIFIED BY %s",
            (password,),
            f"GRANT {', '.join(MASTER_PRIVILEGES)} ON *.* TO '{u}'@'%' WITH GRANT OPTION",
            f"CREATE USER '{REPL_USER}'@'127.0.0.1' IDENTIFIED BY %s",
            (repl_password,),
            f"GRANT REPLICATION SLAVE, REPLICATION CLIENT, SLAVE MONITOR ON *.* TO '{REPL_USER}'@'127.0.0.1'",
            "FLUSH TABLES",
        )

    def _prepare(self) -> None:
        self._account()
        self.root.mkdir(parents=True, exist_ok=True)
        if self.datadir.exists():
            shutil.rmtree(self.datadir)
        self.datadir.mkdir()
        if self.archive_dir is not None:
            self.archive_dir.mkdir(parents=True, exist_ok=True)
        chown_tree(self.root, self.user)
        self._own_files()

    def write_config(self, params: dict[str, str], recovery: dict[str, str] | None = None) -> None:
        binlog_dir = self.archive_dir or self.datadir
        conf = {
            "datadir": str(self.datadir),
            "port": str(self.port),
            "bind-address": "127.0.0.1",
            "socket": str(self.socket),
            "pid-file": str(self.datadir / "server.pid"),
            "log-bin": str(binlog_dir / self.binlog_base),
            "server-id": str(self.port),
            "binlog-format": "ROW",
            "log-slave-updates": "ON",
            "skip-name-resolve": "ON",
            "innodb-buffer-pool-size": "64M",
            "performance-schema": "OFF",
            "skip-log-error": None,
            "slow-query-log-file": str(self.slow_log),
            "general-log-file": str(self.general_log),
            "innodb-flush-log-at-trx-commit": "1",
            "sync-binlog": "1",
            "max-connections": "150",
            "rpl-semi-sync-master-timeout": "3600000",
            "rpl-semi-sync-master-wait-point": "AFTER_SYNC",
            "plugin-dir": str(self._plugin_dir()),
            # FILE is never granted; should a user still get it, its files stay in the node's own.
            "secure-file-priv": str(self._file_dir()),
        }
        base = dict(conf)
        user = {k.replace("_", "-"): str(v) for k, v in params.items()}
        conf.update(user)
        # The parameter group's names, kept in the file: a parameter reset (gone from the group)
        # is put back on the running server by reload(), even after Strata restarted.
        before: set[str] = set()
        old_plugins = ""
        if self.cnf.exists():
            for line in self.cnf.read_text().splitlines():
                if line.startswith(USER_PARAMS_MARK):
                    before = set(line[len(USER_PARAMS_MARK) :].split())
                elif line.startswith("plugin-load-add="):
                    old_plugins = line.split("=", 1)[1]
        self._reset = {k: base.get(k) for k in before - set(user) if k != "plugin-load-add"}
        self._unload = set(filter(None, old_plugins.split(","))) - set(
            filter(None, user.get("plugin-load-add", "").split(","))
        )
        lines = [f"{USER_PARAMS_MARK} {' '.join(sorted(user))}", "[mariadbd]"]
        lines += [k if v is None else f"{k}={v}" for k, v in conf.items()]
        lines += ["[client]", f"socket={self.socket}"]
        self.cnf.write_text("\n".join(lines) + "\n")
        self._params = params

    def _plugin_dir(self) -> Path:
        """The node's plugin directory, made anew: links to `LOADABLE_PLUGINS`, owned by Strata's
        own account (not the engine's), so nothing the engine runs can add a library to it."""
        plugins = self.root / "plugins"
        shutil.rmtree(plugins, ignore_errors=True)
        plugins.mkdir(mode=0o755, parents=True)
        for name in LOADABLE_PLUGINS:
            target = SYSTEM_PLUGIN_DIR / f"{name}.so"
            if target.exists():
                (plugins / f"{name}.so").symlink_to(target)
        return plugins

    def _file_dir(self) -> Path:
        files = self.root / "files"
        files.mkdir(mode=0o700, exist_ok=True)
        chown_tree(files, self.user)
        return files

    def clone_from(
        self, source: MariaNode, *, standby: bool, params: dict[str, str] | None = None, app_name: str = ""
    ) -> None:
        """A copy of a running `source` (mariadb-backup); replicating from it if `standby`."""
        backup = self.root / "clone"
        source.base_backup(backup)
        self._prepare()
        shutil.rmtree(self.datadir)
        shutil.move(str(backup), str(self.datadir))
        chown_tree(self.root, self.user)
        self._own_files()
        self.write_config(params or {})
        self.start()
        if standby:
            gtid = _backup_gtid(self.datadir)
            self.execute(f"SET GLOBAL gtid_slave_pos = '{gtid}'")
            self.follow(source, app_name)
            self.execute("SET GLOBAL read_only = ON")

    def restore_from(
        self,
        backup_dir: Path,
        *,
        archive: Path | None = None,
        target_time: str | None = None,
        params: dict[str, str] | None = None,
    ) -> None:
        """A datadir from a prepared backup; with `archive`, the binlog is replayed (up to
        `target_time`) once the server runs (see `wait_recovered`)."""
        self._prepare()
        shutil.rmtree(self.datadir)
        shutil.copytree(backup_dir, self.datadir, symlinks=True)
        chown_tree(self.root, self.user)
        self._own_files()
        self.write_config(params or {})
        self._pending_replay = (archive, target_time, _backup_binlog_file(self.datadir)) if archive else None

    # -- running ----------------------------------------------------------------------------------

    def start(self, timeout: float = 120) -> None:
        if not self.proc.running():
            self._account()
            adopt_tree(self.root, self.user)  # made by an older Strata for the shared engine account
            self._own_files()
        self.proc.start(ready=self.accepting, timeout=timeout)
        if (self.root / FAULT_DELAY).exists():
            self.set_apply_delay(0)  # a fault of the process before: gone with it

    def set_apply_delay(self, seconds: float) -> None:
        """Hold this replica's apply back: a transaction is applied `seconds` after the primary
        committed it (MASTER_DELAY; 0 lifts it). The I/O thread still receives (and acknowledges)
        every event at once; replication stops for the moment of the change only (MariaDB takes
        CHANGE MASTER on a stopped replica) and starts again however the change went. A fault (FIS
        replica lag): marked by FAULT_DELAY, so a restart lifts it."""
        marker = self.root / FAULT_DELAY
        if seconds > 0:
            marker.write_text(f"{int(seconds)}\n")
        if self.in_recovery():
            try:
                self.execute("STOP SLAVE", f"CHANGE MASTER TO MASTER_DELAY = {int(seconds)}")
            finally:
                self.execute("START SLAVE")
        if seconds <= 0:
            marker.unlink(missing_ok=True)

    def stop(self) -> None:
        self.proc.stop(timeout=60)

    def stop_handing_over(self) -> None:
        """Stop cleanly once every connected replica has received the last binlog event (a plain
        shutdown may close a replica's connection before it has): a planned failover to one of them
        then loses no commit."""
        try:
            self.execute("SHUTDOWN WAIT FOR ALL SLAVES")
        except pymysql.MySQLError:
            pass  # the connection is closed as the server goes down
        self.proc.stop(timeout=60)  # reaps it; SIGKILL only if still up after that

    def set_read_only(self, on: bool) -> None:
        """Refuse (or accept again) clients' writes. Setting it waits for commits in progress, so
        once it returns the binlog position is final: a hand-over can check that the reader has
        all of it before the writer stops (the master user has no READ_ONLY ADMIN to bypass it)."""
        self.execute(f"SET GLOBAL read_only = {'ON' if on else 'OFF'}")

    def kill(self) -> None:
        self.proc.kill()

    def running(self) -> bool:
        return self.proc.running()

    def accepting(self) -> bool:
        self.sql("SELECT 1")
        return True

    def connect(self, dbname: str | None = None) -> pymysql.Connection:
        return pymysql.connect(
            unix_socket=str(self.socket),
            user=getpass.getuser(),
            database=dbname,
            autocommit=True,
            connect_timeout=5,
        )

    def sql(self, query: str, args: tuple | None = None, dbname: str | None = None) -> list[tuple]:
        conn = self.connect(dbname)
        try:
            with conn.cursor() as cur:
                cur.execute(query, args)
                return list(cur.fetchall())
        finally:
            conn.close()

    def execute(self, *statements: object) -> None:
        """Run statements in order; a tuple after a statement holds its arguments."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                items = list(statements)
                while items:
                    stmt = items.pop(0)
                    args = items.pop(0) if items and isinstance(items[0], tuple) else None
                    cur.execute(stmt, args)
        finally:
            conn.close()

    def reload(self) -> None:
        """Apply the parameter group's values to the running server (SET GLOBAL): a static one
        fails here and takes effect at the next restart, from my.cnf; a reset one goes back to
        Strata's setting or the server's default. A plugin named by `plugin_load_add` (an option
        group's, options.py) is installed at once; one no longer named is stopped and uninstalled."""
        params = {k.replace("-", "_"): str(v) for k, v in getattr(self, "_params", {}).items()}
        for so in filter(None, params.get("plugin_load_add", "").split(",")):
            try:
                self.execute(f"INSTALL SONAME '{_plugin_name(so)}'")
            except pymysql.MySQLError as e:
                if e.args and e.args[0] != ER_PLUGIN_INSTALLED:
                    raise EngineError(f"cannot load the plugin {so}: {e}") from e
        for k, base in getattr(self, "_reset", {}).items():
            try:
                name = k.replace("-", "_")
                if base is None:
                    self.execute(f"SET GLOBAL {name} = DEFAULT")
                else:
                    self.execute(f"SET GLOBAL {name} = %s", (_typed(base),))
            except pymysql.MySQLError:
                pass  # a static parameter: back to its default at the next restart
        # after the reset above turned its logging off: MariaDB unloads a busy plugin at shutdown
        for so in getattr(self, "_unload", ()):
            try:
                self.execute(f"UNINSTALL SONAME '{_plugin_name(so)}'")
            except pymysql.MySQLError:
                pass  # not loaded (the server restarted without it)
        for k, v in getattr(self, "_params", {}).items():
            try:
                value = _typed(str(v))  # numeric variables refuse strings
                self.execute(f"SET GLOBAL {k.replace('-', '_')} = %s", (value,))
            except pymysql.MySQLError:
                pass  # a static parameter: applies at the next restart (pending-reboot)

    def in_recovery(self) -> bool:
        return bool(self.sql("SHOW SLAVE STATUS"))

    def promote(self, timeout: float = 300) -> None:
        """Apply everything already received (the relay log), then stop replicating and accept
        writes. The wait is long: on a loaded machine applying a backlog of fsync'd commits can
        take tens of seconds, and cutting it short would lose them."""
        if (self.root / FAULT_DELAY).exists():
            self.set_apply_delay(0)  # a promoted replica applies everything it received, at once
        conn = self.connect()
        try:
            with conn.cursor(pymysql.cursors.DictCursor) as cur:
                cur.execute("SHOW SLAVE STATUS")
                status = cur.fetchone() or {}
                received = status.get("Gtid_IO_Pos")
                if received:
                    cur.execute("SELECT MASTER_GTID_WAIT(%s, %s) AS waited", (received, int(timeout)))
                    if (cur.fetchone() or {}).get("waited") != 0:
                        # RESET SLAVE below would throw away what it received and has not applied:
                        # acknowledged commits of the old primary. Not promoted, then.
                        raise EngineError(f"the replica did not apply {received} in {timeout}s")
        finally:
            conn.close()
        self.execute(
            "STOP SLAVE",
            "RESET SLAVE ALL",
            "SET GLOBAL read_only = OFF",
            "SET GLOBAL rpl_semi_sync_slave_enabled = OFF",
        )

    def wait_recovered(self, timeout: float = 300) -> None:
        """Replay the source's binlog after a restore (point-in-time), then serve; replicas can
        follow it (`_own_repl_user`)."""
        if self._pending_replay is not None:
            self._replay(*self._pending_replay, timeout=timeout)
        self._own_repl_user()

    def _own_repl_user(self) -> None:
        """A restored node has the source's replication user but not its password, which lived
        beside the source's datadir (`.repl`): it gets one of its own, so that replicas (a Multi-AZ
        DB cluster's standbys, an Aurora cluster's readers) can stream from it."""
        if (self.root / ".repl").exists():
            return
        password = secrets.token_hex(16)
        self.execute(
            f"CREATE USER IF NOT EXISTS '{REPL_USER}'@'127.0.0.1' IDENTIFIED BY %s",
            (password,),
            f"ALTER USER '{REPL_USER}'@'127.0.0.1' IDENTIFIED BY %s",
            (password,),
            f"GRANT REPLICATION SLAVE, REPLICATION CLIENT, SLAVE MONITOR ON *.* TO '{REPL_USER}'@'127.0.0.1'",
        )
        write_private(self.root / ".repl", password)

    def _replay(self, archive: Path, target: str | None, first: str, timeout: float) -> None:
        """The source's binlogs from the backup's position (up to `target`) into this server."""
        self._pending_replay = None
        base = first.rsplit(".", 1)[0]
        files = sorted(p for p in archive.glob(f"{base}.[0-9]*") if p.name >= first)
        if not files:
            return
        pos = _backup_binlog_pos(self.datadir)
        argv = [binary("mariadb-binlog"), f"--start-position={pos}"]
        if target:
            argv.append(f"--stop-datetime={_mysql_time(target)}")
        replay = subprocess.run(
            argv + [str(f) for f in files],
            capture_output=True,
            timeout=timeout,
            env={"TZ": "UTC", "PATH": "/usr/bin:/bin"},
        )
        if replay.returncode != 0:
            raise EngineError(f"mariadb-binlog failed: {replay.stderr.decode(errors='replace')[-1000:]}")
        load = subprocess.run(
            [binary("mariadb"), f"--socket={self.socket}", "-u", getpass.getuser()],
            input=replay.stdout,
            capture_output=True,
            timeout=timeout,
        )
        if load.returncode != 0:
            raise EngineError(f"binlog replay failed: {load.stderr.decode(errors='replace')[-1000:]}")

    def create_database(self, name: str) -> None:
        self.execute(f"CREATE DATABASE `{name}`")

    def set_password(self, password: str) -> None:
        self.execute(f"ALTER USER '{self.superuser}'@'%%' IDENTIFIED BY %s", (password,))

    def set_sync_standby(self, enabled: bool, names: Sequence[str] = ()) -> None:
        """Make commits wait for a replica's acknowledgement (semi-synchronous replication): any
        one replica's, as every replica acknowledges (`follow`), so `names` needs no setting."""
        self.execute(f"SET GLOBAL rpl_semi_sync_master_enabled = {'ON' if enabled else 'OFF'}")

    def standby_caught_up(self, app_name: str) -> bool:
        """True once a semi-synchronous replica is attached and acknowledging."""
        rows = self.sql("SHOW STATUS LIKE 'Rpl_semi_sync_master_clients'")
        return bool(rows) and int(rows[0][1]) > 0

    def log_position(self) -> str:
        """The GTID position of the last transaction this primary has logged."""
        return str(self.sql("SELECT @@gtid_binlog_pos")[0][0] or "")

    def applied(self, position: str) -> bool:
        """True if this replica has applied every transaction up to `position` (see log_position)."""
        return not position or bool(self.sql("SELECT MASTER_GTID_WAIT(%s, 0) = 0", (position,))[0][0])

    def streaming_from(self, primary: MariaNode) -> bool:
        """True while this replica's I/O thread is connected to `primary`: only then does the
        primary's SHUTDOWN WAIT FOR ALL SLAVES wait until it has the last binlog event."""
        conn = self.connect()
        try:
            with conn.cursor(pymysql.cursors.DictCursor) as cur:
                cur.execute("SHOW SLAVE STATUS")
                status = cur.fetchone() or {}
        finally:
            conn.close()
        return status.get("Slave_IO_Running") == "Yes" and int(status.get("Master_Port") or 0) == primary.port

    def follow(self, primary: MariaNode, app_name: str) -> None:
        password = (
            (primary.root / ".repl").read_text().strip()
            if (primary.root / ".repl").exists()
            else (self.root / ".repl").read_text().strip()
        )
        write_private(self.root / ".repl", password)
        self.execute(
            "STOP SLAVE",
            f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={primary.port}, "
            f"MASTER_USER='{REPL_USER}', MASTER_PASSWORD=%s, MASTER_USE_GTID=slave_pos",
            (password,),
            "SET GLOBAL rpl_semi_sync_slave_enabled = ON",
            "START SLAVE",
        )

    def switch_wal(self) -> None:
        self.execute("FLUSH BINARY LOGS")

    def wait_archived(self, timeout: float = 60) -> None:
        return None  # the binlog is written in the archive dir directly

    def base_backup(self, dest: Path) -> None:
        """A prepared (consistent, ready to start) copy of the datadir in `dest`."""
        if dest.exists():
            shutil.rmtree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        run_as(
            [
                binary("mariadb-backup"),
                "--backup",
                f"--target-dir={dest}",
                f"--socket={self.socket}",
                f"--user={getpass.getuser()}",
                f"--datadir={self.datadir}",
            ],
            None,
            timeout=600,
        )
        # Strata's own files (a snapshot's outlive the node): a node restoring one makes a copy its own.
        run_as([binary("mariadb-backup"), "--prepare", f"--target-dir={dest}"], None, timeout=600)

    def replica_lag_seconds(self) -> float | None:
        conn = self.connect()
        try:
            with conn.cursor(pymysql.cursors.DictCursor) as cur:
                cur.execute("SHOW SLAVE STATUS")
                row = cur.fetchone()
        finally:
            conn.close()
        if not row:
            return None
        lag = row.get("Seconds_Behind_Master")
        return float(lag) if lag is not None else 0.0

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
        self.socket.unlink(missing_ok=True)
        drop_node_account(self.root, self.archive_dir, self.binlog_base)

    def wait_writable(self, timeout: float = 30) -> bool:
        return wait_until(lambda: not self.in_recovery(), timeout)


def _backup_info(datadir: Path) -> list[str]:
    for name in ("mariadb_backup_binlog_info", "xtrabackup_binlog_info"):
        p = datadir / name
        if p.exists():
            return p.read_text().split()
    raise EngineError("the backup has no binlog position")


def _backup_binlog_file(datadir: Path) -> str:
    return Path(_backup_info(datadir)[0]).name


def _backup_binlog_pos(datadir: Path) -> int:
    return int(_backup_info(datadir)[1])


def _backup_gtid(datadir: Path) -> str:
    info = _backup_info(datadir)
    return info[2] if len(info) > 2 else ""


def _plugin_name(so: str) -> str:
    """The library name INSTALL/UNINSTALL SONAME takes; only Strata's own option table names one."""
    name = so.removesuffix(".so")
    if not name.replace("_", "").isalnum():
        raise EngineError(f"not a plugin library name: {so!r}")
    return name


def _typed(value: str) -> int | float | str:
    """A parameter's value as SET GLOBAL takes it: numbers as numbers, anything else as a string."""
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def _mysql_time(iso: str) -> str:
    """'2026-11-26T15:00:01.5+00:00' -> '2026-11-26 15:00:01' (mariadb-binlog, TZ=UTC; the stop
    datetime is exclusive, so the second itself is included by rounding up)."""
    import datetime as dt

    t = dt.datetime.fromisoformat(iso).astimezone(dt.UTC).replace(tzinfo=None)
    return (t.replace(microsecond=0) + dt.timedelta(seconds=1)).strftime("%Y-%m-%d %H:%M:%S")
