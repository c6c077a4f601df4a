from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ..conftest import API_KEY
from ..receiver import closed_port

HOOKLINE = str(Path(sys.executable).with_name("hookline"))


def cli_env(db: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKLINE_")}
    env.update(
        HOOKLINE_DATABASE_URL=db,
        HOOKLINE_API_KEY=API_KEY,
        HOOKLINE_EGRESS_ALLOW="127.0.0.0/8",
        HOOKLINE_RETRY_SCHEDULE="0,200ms,400ms,1s,1s,1s",
        HOOKLINE_RETRY_JITTER="0",
        HOOKLINE_ATTEMPT_TIMEOUT="2s",
        HOOKLINE_LEASE="3s",
        HOOKLINE_POLL_INTERVAL="200ms",
    )
    env.update(extra)
    return env


def run_cli(db: str, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HOOKLINE, *args],
        env=cli_env(db),
        input=input.decode() if input is not None else None,
        capture_output=True,
        text=True,
        timeout=60,
    )


class HooklineProcess:
    """``hookline serve``, ``api`` or ``worker`` in a subprocess, as an operator starts it."""

    def __init__(self, db: str, cwd: Path, role: str = "serve", **env: str) -> None:
        self.role = role
        self.port = closed_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._args = [HOOKLINE, role] + ([] if role == "worker" else ["--port", str(self.port)])
        self._env = cli_env(db, **env)
        self._cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None
        self.log = cwd / f"{role}-{self.port}.log"

    def start(self) -> HooklineProcess:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self._args, env=self._env, cwd=self._cwd, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"hookline {self.role} exited: {self.log.read_text()}")
            if self._ready():
                return self
            time.sleep(0.05)
        raise RuntimeError(f"hookline {self.role} did not come up: {self.log.read_text()}")

    def _ready(self) -> bool:
        if self.role == "worker":
            return "worker delivering" in self.log.read_text()
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            return self.process.wait(30)
        return self.process.returncode


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/hookline.db"


@pytest.fixture
def serve(db: str, tmp_path: Path) -> Iterator[HooklineProcess]:
    process = HooklineProcess(db, tmp_path).start()
    yield process
    process.stop()
