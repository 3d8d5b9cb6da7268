"""A real `strata serve` subprocess for tests: free port, temp data dir, boto3 clients, kill/restart."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

REGION = "us-east-1"
ACCESS_KEY = "test"
SECRET_KEY = "test"


class _PortTaken(Exception):
    """Another process took a port between free_port() and the server's bind."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StrataProcess:
    """Starts `python -m strata.cli serve` and waits until /_strata/health answers."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        extra_env: dict[str, str] | None = None,
        extra_args: list[str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.cwd = cwd  # a checkout whose code to run (benchmarks against an older commit); None: ours
        self.port = port or free_port()
        # A port of its own for the HTTPS listener too (the default 4567 would collide between
        # servers of parallel test workers); `extra_args` may still say `--tls-port off`.
        self.tls_port = free_port()
        while self.tls_port == self.port:  # free_port may hand out the same free port twice
            self.tls_port = free_port()
        # Ports this harness picked (retried elsewhere if taken); ports a test sets are its own.
        self._picked = (None if port else self.port, self.tls_port)
        self.extra_env = extra_env or {}
        self.extra_args = extra_args or []
        # The session's shared server (conftest.strata_server): its clock must not move, or every
        # later test on it meets expired presigned URLs and PITR windows (a day's jump failed 9).
        self.shared = False
        self.proc: subprocess.Popen | None = None
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-server.log"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def https_endpoint(self) -> str:
        return f"https://127.0.0.1:{self.tls_port}"

    @property
    def ca_path(self) -> Path:
        """The CA certificate HTTPS clients trust (`verify=`, AWS_CA_BUNDLE)."""
        return self.data_dir / "tls" / "ca.pem"

    def start(self, timeout: float = 60) -> StrataProcess:
        """Start the server; when its ports were taken meanwhile (free_port only found them free a
        moment ago), start again on others. The health answer must come from this process: one
        answered by another server on a port taken from under us once made a test talk to the
        wrong server (InvalidClientTokenId for every key of its users file)."""
        for _ in range(3):
            try:
                return self._start_once(timeout)
            except _PortTaken as taken:
                if (self.port, self.tls_port) != self._picked:  # the test chose them: its error
                    raise RuntimeError(f"strata could not listen: {taken}") from None
                self.port, self.tls_port = free_port(), free_port()
                while self.tls_port == self.port:
                    self.tls_port = free_port()
                self._picked = (self.port, self.tls_port)
        return self._start_once(timeout)

    def _start_once(self, timeout: float) -> StrataProcess:
        env = dict(os.environ)
        env.update(self.extra_env)
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the process's life
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "strata.cli",
                "serve",
                "--port",
                str(self.port),
                "--tls-port",
                str(self.tls_port),
                "--data-dir",
                str(self.data_dir),
                *self.extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.cwd,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_tail()
                if "address already in use" in tail.lower() or "errno 98" in tail.lower():
                    raise _PortTaken(tail)
                raise RuntimeError(f"strata exited with {self.proc.returncode}:\n{tail}")
            try:
                answered = self.health()
            except OSError:
                time.sleep(0.05)
                continue
            if answered.get("pid") == self.proc.pid:
                return self
            # another server holds our port: ours cannot bind it and will exit
            try:
                self.proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            raise _PortTaken(f"port {self.port} answered by pid {answered.get('pid')}")
        raise RuntimeError(f"strata did not start in {timeout}s:\n{self.log_tail()}")

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return ""

    def admin(self, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.endpoint + path, data=data, method="POST" if data else "GET")
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def health(self) -> dict:
        return self.admin("/_strata/health")

    def advance_clock(self, duration: str) -> dict:
        assert not self.shared, "the shared strata_server's clock must not move: use strata_factory"
        return self.admin("/_strata/clock", {"advance": duration})

    def stop(self, timeout: float = 60) -> None:
        """Graceful stop (SIGTERM), as `strata serve` gets from Ctrl-C or a service manager."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        """kill -9: no shutdown code runs."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> StrataProcess:
        self.stop()
        return self.start()

    def session(self, **kw: Any) -> boto3.Session:
        return boto3.Session(
            aws_access_key_id=kw.pop("access_key", ACCESS_KEY),
            aws_secret_access_key=kw.pop("secret_key", SECRET_KEY),
            region_name=kw.pop("region", REGION),
        )

    def client(self, service: str, config: Config | None = None, https: bool = False, **kw: Any) -> Any:
        """A boto3 client of this server (`https=True`: over its HTTPS listener, trusting its CA)."""
        cfg = Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=10, read_timeout=120)
        if config is not None:
            cfg = cfg.merge(config)
        if https:
            return self.session(**kw).client(
                service, endpoint_url=self.https_endpoint, config=cfg, verify=str(self.ca_path)
            )
        return self.session(**kw).client(service, endpoint_url=self.endpoint, config=cfg)

    def resource(self, service: str, **kw: Any) -> Any:
        return self.session(**kw).resource(service, endpoint_url=self.endpoint)

    def env(self) -> dict[str, str]:
        """Environment for AWS CLI / SDK subprocesses pointed at this server."""
        env = dict(os.environ)
        env.update(
            AWS_ENDPOINT_URL=self.endpoint,
            AWS_ACCESS_KEY_ID=ACCESS_KEY,
            AWS_SECRET_ACCESS_KEY=SECRET_KEY,
            AWS_DEFAULT_REGION=REGION,
            AWS_CONFIG_FILE="/dev/null",
            AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        )
        return env
