"""A real `medsign serve` process for end-to-end tests."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

MEDSIGN = [sys.executable, "-m", "medsign.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    base: str
    port: int
    data_dir: Path
    database_url: str
    env: dict[str, str]
    admin_token: str
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def admin(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base, timeout=60, headers={"Authorization": f"Bearer {self.admin_token}"}
        )

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run `medsign ARGS --data-dir DIR` against this installation."""
        proc = subprocess.run(
            [*MEDSIGN, *args, "--data-dir", str(self.data_dir)],
            env=self.env,
            capture_output=True,
            text=True,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"medsign {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
        return proc

    def start(self) -> None:
        log = (self.data_dir / "server.log").open("ab")
        self.process = subprocess.Popen(
            [*MEDSIGN, "serve", "--data-dir", str(self.data_dir), "--port", str(self.port)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for _ in range(300):
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(self.base + "/readyz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise AssertionError((self.data_dir / "server.log").read_text())

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, no flushing — a crash."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None


@contextmanager
def live_server(
    data_dir: Path,
    database_url: str,
    *,
    extra_env: dict[str, str] | None = None,
    hostname: str = "127.0.0.1",
) -> Iterator[LiveServer]:
    """`medsign init` (public base URL = this server) then `medsign serve` on a free port.

    ``hostname="localhost"`` gives a base URL a browser accepts as a WebAuthn relying party
    (an IP address cannot be one)."""
    port = free_port()
    base = f"http://{hostname}:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDSIGN_")}
    env["MEDSIGN_LOG_LEVEL"] = "WARNING"
    env.update(extra_env or {})
    init = subprocess.run(
        [
            *MEDSIGN,
            "init",
            "--data-dir",
            str(data_dir),
            "--database-url",
            database_url,
            "--public-base-url",
            base,
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert init.returncode == 0, init.stdout + init.stderr
    match = re.search(r"(msadm_\S+)", init.stdout)
    assert match is not None, init.stdout
    server = LiveServer(base, port, data_dir, database_url, env, match.group(1))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def enrol_live(
    server: LiveServer, his: object, record: dict[str, object], algorithm: str, pin: str
) -> None:
    """Walk the real enrolment of ``record`` (an imported staff member) over HTTP, reading
    the SMS code from the development outbox."""
    request = getattr(his, "request")  # noqa: B009  (MedsignClient, untyped here)
    enrolment = request(
        "POST",
        "/api/v1/enrolments",
        json={"employee_no": record["employee_no"], "key_algorithm": algorithm},
    ).json()
    token = enrolment["url"].rsplit("/", 1)[1]
    base = f"{server.base}/m/api/enrolments/{token}"
    assert httpx.post(f"{base}/send-code").status_code == 200
    outbox = server.admin.get(
        "/admin/v1/sms/outbox", params={"phone_last4": str(record["phone"])[-4:], "limit": 1}
    ).json()
    code = re.search(r"(\d{6})", outbox[0]["body"])
    assert code is not None
    assert httpx.post(f"{base}/verify-code", json={"code": code.group(1)}).status_code == 200
    assert (
        httpx.post(
            f"{base}/confirm-identity", json={"national_id": record["national_id"]}
        ).status_code
        == 200
    )
    done = httpx.post(f"{base}/pin", json={"pin": pin}, timeout=60)
    assert done.status_code == 200, done.text
