"""The documented curl + openssl scripts, the Python client and the `medsign app` CLI against
a running `medsign serve`, with webhooks delivered by the server's own dispatcher loop to a
receiver on 127.0.0.1."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from medsign.client import MedsignClient, verify_webhook
from tests.conftest import REPO_ROOT, make_database_url
from tests.live import LiveServer, live_server

pytestmark = pytest.mark.interop

MEDSIGN = [sys.executable, "-m", "medsign.cli"]
DOC = REPO_ROOT / "docs" / "integration" / "authentication.md"


@dataclass
class Receiver:
    url: str = ""
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@dataclass
class Live:
    server: LiveServer
    receiver: Receiver

    @property
    def base(self) -> str:
        return self.server.base

    @property
    def data_dir(self) -> Path:
        return self.server.data_dir

    @property
    def env(self) -> dict[str, str]:
        return self.server.env

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.server.cli(*args, check=check)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.received.append((dict(self.headers.items()), body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[Live]:
    data_dir = tmp_path_factory.mktemp("live-apps")
    urls = make_database_url(data_dir)
    with live_server(
        data_dir, next(urls), extra_env={"MEDSIGN_WEBHOOK_POLL_SECONDS": "0.2"}
    ) as server:
        yield Live(server, receiver)
    for _ in urls:
        pass


def doc_script(name: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    match = re.search(rf"<!-- doc-test: {re.escape(name)} -->\n```bash\n(.*?)```", text, re.S)
    assert match, f"no doc-test block {name}"
    return match.group(1)


def register(live: Live, code: str, *extra: str) -> tuple[str, str]:
    out = live.cli("app", "register", "--name", "住院医生工作站", "--code", code, *extra).stdout
    app_id = re.search(r"application_id=(app_\w+)", out)
    secret = re.search(r"^\s+(mss_[A-Za-z0-9_-]{43})$", out, re.M)
    assert app_id and secret, out
    return app_id.group(1), secret.group(1)


def run_doc_script(live: Live, name: str, app_id: str, secret: str) -> dict[str, object]:
    env = {**live.env, "MEDSIGN_URL": live.base, "APP_ID": app_id, "SECRET": secret}
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", doc_script(name)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    answer: dict[str, object] = json.loads(proc.stdout)
    return answer


def wait_for(predicate: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_documented_curl_scripts_and_webhook_delivery(live: Live) -> None:
    app_id, secret = register(live, "live-emr", "--webhook-url", live.receiver.url)

    posted = run_doc_script(live, "curl-hmac-sha256", app_id, secret)
    delivery_id = posted["delivery_id"]
    assert isinstance(delivery_id, str) and delivery_id.startswith("whd_")
    me = run_doc_script(live, "curl-hmac-sm3", app_id, secret)
    assert (me["id"], me["algorithm"]) == (app_id, "sm3")

    # The server's lifespan loop delivers the queued webhook:test notification.
    wait_for(
        lambda: any(h.get("X-Medsign-Delivery") == delivery_id for h, _ in live.receiver.received)
    )
    headers, body = next(
        (h, b) for h, b in live.receiver.received if h["X-Medsign-Delivery"] == delivery_id
    )
    verify_webhook(secret, headers, body)
    assert json.loads(body)["data"] == {"note": "hello from curl"}
    wait_for(lambda: "delivered" in live.cli("app", "deliveries", "live-emr").stdout)


def test_python_client_and_cli_lifecycle(live: Live) -> None:
    app_id, secret = register(live, "live-lis", "--department", "检验科", "--rate-limit", "100")
    shown = json.loads(live.cli("app", "show", "live-lis", "--json").stdout)
    assert shown["id"] == app_id and shown["signer_scope"]["departments"] == ["检验科"]
    assert "mss_" not in live.cli("app", "list").stdout + json.dumps(shown)

    with MedsignClient(live.base, app_id, secret, algorithm="hmac-sm3") as client:
        assert client.get("/api/v1/application")["id"] == app_id
        live.cli("app", "freeze", "live-lis")
        assert client.request("GET", "/api/v1/application").json()["code"] == "application-frozen"
        live.cli("app", "unfreeze", app_id)
        assert client.get("/api/v1/application", params={"b": "2", "a": "张 三"})["id"] == app_id

    rotated = live.cli("app", "rotate-secret", "live-lis", "--grace-hours", "0").stdout
    new_secret = re.search(r"^\s+(mss_\S+)$", rotated, re.M)
    assert new_secret and "previous secret no longer valid" in rotated
    with MedsignClient(live.base, app_id, secret) as old:
        assert old.request("GET", "/api/v1/application").json()["code"] == "auth-signature"
    with MedsignClient(live.base, app_id, new_secret.group(1)) as new:
        assert new.get("/api/v1/application")["id"] == app_id
        live.cli("app", "edit", "live-lis", "--name", "检验系统", "--webhook-url", "")
        assert new.get("/api/v1/application")["name"] == "检验系统"
        live.cli("app", "deregister", "live-lis", "--yes")
        gone = new.request("GET", "/api/v1/application").json()
        assert gone["code"] == "application-deregistered"

    bad = live.cli("app", "register", "--name", "x", "--code", "live-lis", check=False)
    assert bad.returncode == 2 and "invalid-state" in bad.stderr
    bad = live.cli(
        "app", "register", "--name", "x", "--code", "y", "--webhook-url", "ftp://h", check=False
    )
    assert bad.returncode == 2 and "invalid-input" in bad.stderr
    missing = live.cli("app", "show", "nope", check=False)
    assert missing.returncode == 2 and "not-found" in missing.stderr
