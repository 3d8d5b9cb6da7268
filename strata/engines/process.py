"""Supervise one engine child process (postgres, mariadbd, redis-server, memcached, haproxy ...).

What a caller may rely on:
- `EngineProcess(spec).start(ready=...)` runs `spec.argv` in the foreground (never a daemonizing
  wrapper like `pg_ctl start`: the supervisor must be the parent), writes `<run_dir>/<name>.pid`,
  appends stdout/stderr to `<run_dir>/<name>.log`, and returns once `ready()` is true (raises
  `EngineError` with the log tail if the process exits or the timeout passes first).
- When Strata runs as root and `spec.user` is set (PostgreSQL refuses to run as root), the child
  runs as that user, keeping only CAP_DAC_READ_SEARCH so it can reach a data dir below private
  directories (Strata's data dir is 0700); `chown_tree()` hands it its data directory. Engines
  run as `ENGINE_USER`, a system account of its own (created on first use if scripts/install.sh
  has not), never a shared one like `nobody`; an engine whose users can get past their privileges
  (MariaDB: strata.engines.mariadb) runs as an account of its own per node (`ensure_node_user`,
  removed with the node: `remove_node_user`), so what it writes stays in its own node's files.
  Not root: engines run as Strata's own user.
- `write_private()` writes a file only its owner can read (engine configs holding secrets).
- The child gets PR_SET_PDEATHSIG (`spec.death_signal`) so it dies with Strata even after
  `kill -9` of Strata. The signal is tied to the *thread* that forked, so start engines from a
  long-lived thread (the event loop thread or the default executor), never a short-lived one.
- Orphans: `start()` first looks at the pidfile; a live process whose command line still names
  this engine is stopped before a fresh start (we cannot wait() on a process we did not fork, so
  "adopt" means "replace"); a stale pidfile is removed.
- `stop()` sends `spec.stop_signal`, waits `timeout`, then SIGKILL; it is idempotent.
"""

from __future__ import annotations

import ctypes
import grp
import hashlib
import logging
import os
import pwd
import signal
import subprocess
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import ClassVar

from strata.affinity import allowed_cpus, widen_child

PR_SET_PDEATHSIG = 1
PR_SET_KEEPCAPS = 8
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
CAP_DAC_READ_SEARCH = 2
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
# The system account every engine process runs as when Strata runs as root.
ENGINE_USER = "strata-engine"
# Per-node accounts and groups (`ensure_node_user`) take their ids from this range, far above the
# ones useradd hands out, so that an id is not soon reused by an account of something else.
NODE_ID_BASE = 0x5354_0000
NODE_ID_SPAN = 0x1_0000
_accounts = threading.Lock()  # one useradd/groupadd decision at a time in this process

log = logging.getLogger("strata.engines")


class EngineError(Exception):
    """An engine process could not be started, or did not become ready."""


@dataclass
class ProcessSpec:
    """How to run one engine process.

    `match` is a string that must appear in /proc/<pid>/cmdline for a pidfile's process to be
    recognised as ours (defaults to the run_dir path, which every engine names in its argv only if
    the caller arranges it — pass the data dir when it differs).
    """

    name: str
    argv: list[str]
    run_dir: Path
    env: dict[str, str] | None = None
    user: str | None = None
    cwd: Path | None = None
    stop_signal: int = signal.SIGTERM
    death_signal: int = signal.SIGTERM
    match: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    # The engine cgroup (strata.engines.cgroups) to run in, where Strata can make them: how a
    # resource's own connections are told apart (security groups' egress rules).
    cgroup: str | None = None

    @property
    def pidfile(self) -> Path:
        return Path(self.run_dir) / f"{self.name}.pid"

    @property
    def logfile(self) -> Path:
        return Path(self.run_dir) / f"{self.name}.log"


def running_as_root() -> bool:
    return os.geteuid() == 0


def effective_user(user: str | None) -> str | None:
    """The user to run a child as: `user` when we are root (created if missing), else None (run as
    ourselves)."""
    if not (user and running_as_root()):
        return None
    ensure_system_user(user)
    return user


@cache
def ensure_system_user(user: str) -> None:
    """Create the system account `user` (no home, no login shell) unless it exists; root only."""
    try:
        pwd.getpwnam(user)
        return
    except KeyError:
        pass
    argv = ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent"]
    argv += ["--shell", "/usr/sbin/nologin", "--comment", "Strata engines", user]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    try:
        pwd.getpwnam(user)  # created by us, or by a concurrent start (useradd then fails)
    except KeyError:
        raise EngineError(
            f"cannot create the system user {user} for engines ({done.stderr.strip()}); create it with "
            f"`useradd --system --user-group {user}` (scripts/install.sh does)"
        ) from None
    log.info("created the system user %s that engines run as", user)


def _free_id(name: str) -> int:
    """An id free both as a uid and as a gid in the node range, looked for from a point the name
    picks (so concurrent Stratas rarely race for the same one; useradd refuses a taken uid)."""
    start = int(hashlib.sha256(name.encode()).hexdigest(), 16) % NODE_ID_SPAN
    for i in range(NODE_ID_SPAN):
        n = NODE_ID_BASE + (start + i) % NODE_ID_SPAN
        try:
            pwd.getpwuid(n)
            continue
        except KeyError:
            pass
        try:
            grp.getgrgid(n)
        except KeyError:
            return n
    raise EngineError(f"no free id for {name} in {NODE_ID_BASE}..{NODE_ID_BASE + NODE_ID_SPAN - 1}")


def _account_command(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise EngineError(f"{argv[0]} failed ({done.returncode}): {(done.stderr or done.stdout).strip()}")


def ensure_group(name: str) -> int:
    """The gid of the system group `name`, made (in the node range) unless it exists; root only."""
    with _accounts:
        try:
            return grp.getgrnam(name).gr_gid
        except KeyError:
            pass
        _account_command(["groupadd", "--system", "--gid", str(_free_id(name)), name])
        return grp.getgrnam(name).gr_gid


def ensure_node_user(name: str, home: Path, groups: tuple[str, ...] = ()) -> None:
    """The system account `name` of one engine node (own uid and primary group from the node range,
    member of `groups`), made unless it exists; root only. `home` is the node's directory (never
    created here): it says which node an account belongs to."""
    with _accounts:
        try:
            pwd.getpwnam(name)
        except KeyError:
            _reap_node_users()
            uid = _free_id(name)
            try:
                grp.getgrnam(name)
            except KeyError:  # its own group, with the same id (useradd's would be a system gid)
                _account_command(["groupadd", "--system", "--gid", str(uid), name])
            argv = ["useradd", "--system", "--uid", str(uid), "--gid", name, "--no-create-home"]
            argv += ["--home-dir", str(home), "--shell", "/usr/sbin/nologin"]
            argv += ["--comment", "Strata engine node"]
            _account_command(argv + (["--groups", ",".join(groups)] if groups else []) + [name])
            log.info("created the system user %s (uid %d) for the engine node in %s", name, uid, home)
            return
        missing = [g for g in groups if name not in grp.getgrnam(g).gr_mem]
        if missing:
            _account_command(["usermod", "--append", "--groups", ",".join(missing), name])


def _reap_node_users() -> None:
    """Remove the node accounts left by Stratas that ended without removing their nodes (kill -9,
    a test's server): those whose node directory and its parent are gone. A node on a closed
    encrypted volume may be taken for one: it gets an account anew when it starts (its files are
    handed over then, strata.engines.mariadb). Groups left without members go too."""
    emptied: set[str] = set()
    for pw in pwd.getpwall():
        if not (NODE_ID_BASE <= pw.pw_uid < NODE_ID_BASE + NODE_ID_SPAN) or Path(pw.pw_dir).parent.exists():
            continue
        groups = [g.gr_name for g in grp.getgrall() if pw.pw_name in g.gr_mem]
        done = subprocess.run(["userdel", pw.pw_name], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            continue  # a process still runs as it
        log.info("removed the account %s of a node gone (%s)", pw.pw_name, pw.pw_dir)
        emptied.update(groups + [pw.pw_name])
    for name in emptied:
        try:
            group = grp.getgrnam(name)
        except KeyError:
            continue
        if NODE_ID_BASE <= group.gr_gid < NODE_ID_BASE + NODE_ID_SPAN and not group.gr_mem:
            subprocess.run(["groupdel", name], capture_output=True, timeout=60)


def remove_node_user(name: str) -> None:
    """Remove a node's account (`ensure_node_user`) and its own group, once its processes ended."""
    with _accounts:
        try:
            pwd.getpwnam(name)
        except KeyError:
            return
        _account_command(["userdel", name])
        try:
            grp.getgrnam(name)
        except KeyError:
            return  # userdel removed its group (USERGROUPS_ENAB)
        _account_command(["groupdel", name])


def remove_group_if_unused(name: str) -> bool:
    """Remove the group `name` if no account is a member of it any more; True if it is gone."""
    with _accounts:
        try:
            group = grp.getgrnam(name)
        except KeyError:
            return True
        if group.gr_mem or any(p.pw_gid == group.gr_gid for p in pwd.getpwall()):
            return False
        _account_command(["groupdel", name])
        return True


def adopt_tree(path: Path, user: str | None) -> None:
    """`chown_tree(path, user)` unless `path` already belongs to the user (the usual case): a data
    dir made by an older Strata for another account (`nobody`, `mysql`) is handed over once."""
    user = effective_user(user)
    if user is None or not Path(path).exists():
        return
    if Path(path).stat().st_uid != pwd.getpwnam(user).pw_uid:
        chown_tree(path, user)


def write_private(path: Path, text: str) -> None:
    """Write `path` readable and writable by its owner only (0600, also if it existed before)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(text)


def chown_tree(path: Path, user: str | None) -> None:
    """Give `path` (recursively) to `user` when we are root; a no-op otherwise."""
    user = effective_user(user)
    if user is None:
        return
    pw = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, pw.pw_uid, pw.pw_gid)
        for name in dirs + files:
            try:
                os.chown(os.path.join(root, name), pw.pw_uid, pw.pw_gid, follow_symlinks=False)
            except FileNotFoundError:
                pass


def run_as(
    argv: list[str],
    user: str | None,
    *,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess:
    """Run a short command (initdb, pg_basebackup, mariadb-install-db) as the engine user.

    Raises EngineError with the command's output when it fails.
    """
    try:
        cp = subprocess.run(
            argv,
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            preexec_fn=_child_setup(signal.SIGKILL, effective_user(user)),
        )
    except subprocess.TimeoutExpired as e:
        raise EngineError(f"{argv[0]} timed out after {timeout}s") from e
    if cp.returncode != 0:
        raise EngineError(
            f"{os.path.basename(argv[0])} failed ({cp.returncode}): {(cp.stderr or cp.stdout)[-2000:]}"
        )
    return cp


def _child_setup(
    death_signal: int, user: str | None = None, cgroup: Path | None = None
) -> Callable[[], None]:
    """The preexec hook: own process group, into `cgroup` (a directory), drop to `user` keeping
    CAP_DAC_READ_SEARCH, die with us.

    The engine user must reach its data dir wherever the operator put Strata's data (under /root,
    or a pytest temp dir that is mode 0700); instead of opening those directories to everyone, the
    child keeps one capability: traversing and reading any directory (ambient CAP_DAC_READ_SEARCH).
    Files it writes are its own (the caller chowns the data dir to it).
    """
    pw = pwd.getpwnam(user) if user else None
    groups = os.getgrouplist(pw.pw_name, pw.pw_gid) if pw is not None else []  # its own, and shared ones
    cpus = allowed_cpus()  # read before fork: the child must not import or log
    from strata.engines.cgroups import join as join_cgroup  # (cgroups -> nft -> this module)

    def setup() -> None:
        os.setpgrp()  # own process group: a Ctrl-C on Strata's terminal is Strata's to handle
        widen_child(cpus)  # not confined to the serving thread's CPU (strata.affinity)
        if cgroup is not None:  # while still root: cgroup.procs is root's
            join_cgroup(cgroup)
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        if pw is not None:
            libc.prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0)
            os.setgroups(groups)
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
            header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
            bit = 1 << CAP_DAC_READ_SEARCH
            data = (ctypes.c_uint32 * 6)(bit, bit, bit, 0, 0, 0)  # effective, permitted, inheritable (x2)
            libc.capset(header, data)
            libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_DAC_READ_SEARCH, 0, 0)
            os.environ["HOME"] = pw.pw_dir
            os.environ["USER"] = os.environ["LOGNAME"] = pw.pw_name
        libc.prctl(PR_SET_PDEATHSIG, int(death_signal), 0, 0, 0)  # after setuid, which clears it
        if os.getppid() == 1:  # parent died between fork and prctl
            os.kill(os.getpid(), int(death_signal))

    return setup


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll `predicate` until true or `timeout` seconds pass; True if it became true."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return True
        except Exception:  # noqa: BLE001 - readiness probes fail in many ways while starting
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
        interval = min(interval * 1.5, 0.5)


class EngineProcess:
    """One supervised child process; see the module docstring for the guarantees."""

    # Every supervisor alive in this process (the console's health page lists them).
    instances: ClassVar[weakref.WeakSet[EngineProcess]] = weakref.WeakSet()

    def __init__(self, spec: ProcessSpec) -> None:
        self.spec = spec
        self.proc: subprocess.Popen | None = None
        EngineProcess.instances.add(self)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n: int = 4000) -> str:
        try:
            data = self.spec.logfile.read_bytes()
        except OSError:
            return ""
        return data[-n:].decode(errors="replace")

    def reap_orphan(self, timeout: float = 10) -> bool:
        """Stop a process left behind by a previous Strata (from the pidfile); True if one was found."""
        try:
            pid = int(self.spec.pidfile.read_text().strip())
        except (OSError, ValueError):
            return False
        found = False
        match = self.spec.match or str(self.spec.run_dir)
        if pid_alive(pid) and match in _cmdline(pid):
            found = True
            _signal_and_wait(pid, self.spec.stop_signal, timeout)
            _kill_group(pid)
        self.spec.pidfile.unlink(missing_ok=True)
        return found

    def start(self, ready: Callable[[], bool] | None = None, timeout: float = 60) -> None:
        """Start the process (replacing an orphan) and wait until `ready()` returns true."""
        if self.running():
            return
        spec = self.spec
        Path(spec.run_dir).mkdir(parents=True, exist_ok=True)
        self.reap_orphan()
        env = dict(spec.env if spec.env is not None else os.environ)
        env.update(spec.extra_env)
        log = open(spec.logfile, "ab")
        try:
            self.proc = subprocess.Popen(
                spec.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=spec.cwd,
                preexec_fn=_child_setup(spec.death_signal, effective_user(spec.user), self._cgroup()),
                close_fds=True,
            )
        finally:
            log.close()
        try:
            spec.pidfile.write_text(f"{self.proc.pid}\n")
        except OSError:  # a full disk: never leave running a process whose pid is not recorded
            self.stop()
            raise
        if ready is None:
            return
        ok = wait_until(lambda: self.proc is not None and (self.proc.poll() is not None or ready()), timeout)
        if self.proc.poll() is not None:
            code = self.proc.returncode
            self.spec.pidfile.unlink(missing_ok=True)
            raise EngineError(f"{spec.name} exited with code {code} while starting: {self.log_tail(1500)}")
        if not ok:
            self.stop()
            raise EngineError(f"{spec.name} was not ready after {timeout}s: {self.log_tail(1500)}")

    def _cgroup(self) -> Path | None:
        from strata.engines.cgroups import engine_cgroups  # (cgroups -> nft -> this module)

        cgroups = engine_cgroups() if self.spec.cgroup else None
        return cgroups.path(self.spec.cgroup) if cgroups is not None and self.spec.cgroup else None

    def stop(self, timeout: float = 15) -> None:
        """Stop cleanly (stop_signal), SIGKILL after `timeout`; safe to call when not running."""
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    self.proc.send_signal(self.spec.stop_signal)
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
                except ProcessLookupError:
                    pass
            _kill_group(self.proc.pid)
            self.proc = None
        else:
            self.reap_orphan(timeout)
        self.spec.pidfile.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL now (fault injection: an engine crash); the caller decides what happens next."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
            _kill_group(self.proc.pid)

    def signal(self, sig: int) -> None:
        if self.running():
            assert self.proc is not None
            self.proc.send_signal(sig)


def _signal_and_wait(pid: int, sig: int, timeout: float) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    if not wait_until(lambda: not pid_alive(pid), timeout):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        wait_until(lambda: not pid_alive(pid), 10)


def _kill_group(pgid: int) -> None:
    """SIGKILL whatever is left of the process group the child led (workers, backends)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
