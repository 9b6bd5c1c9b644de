"""`run_control_plane()`: a real `minimesh control` subprocess for integration tests.

Like uvicorn's `run_server` helper: start the process on port 0, wait until
it has written `<home>/control/url` and answers /healthz, hand the test an
object to talk to it, and stop it afterwards whatever happened.

The control plane serves HTTPS only and wants a client certificate. So that
a test can talk to it with any plain HTTP client, `cp.url` is an *admin
proxy* — what `kubectl proxy` is to an API server: a loopback HTTP listener
in the test process that forwards each request over mutual TLS with the
admin's certificate from `<home>/credentials`. The real address is
`cp.https_url`; attacks go there (tests/security/). Sidecars started by the
builders (mesh.py) are handed the real address, their service's join token
and the CA file, whichever of the two URLs the test passes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import http.server
import inspect
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from minimesh.pki.operator import CA_FILE, credentials_dir, operator_context
from minimesh.pki.tokens import issue_token

_BY_URL: dict[str, "ControlPlaneProcess"] = {}  # admin-proxy URL and real URL -> the control plane


def control_plane_at(url: str) -> "ControlPlaneProcess | None":
    """The control plane a builder started at `url` (either of its URLs), if any."""
    return _BY_URL.get(url.rstrip("/"))


class _Forward(http.server.BaseHTTPRequestHandler):
    """One request through the admin proxy: same method, path, headers and body, over mTLS."""

    protocol_version = "HTTP/1.1"
    target: "AdminProxy"

    def _forward(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else None
        target = urlsplit(self.target.url_of())
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection", "keep-alive")}
        try:
            conn = http.client.HTTPSConnection(target.hostname, target.port, timeout=330,
                                               context=self.target.context_of())
            conn.request(self.command, self.path, body=body, headers=headers)
            upstream = conn.getresponse()
            data, status = upstream.read(), upstream.status
            out_headers = [(k, v) for k, v in upstream.getheaders()
                           if k.lower() not in ("transfer-encoding", "connection", "content-length")]
            conn.close()
        except OSError as e:
            data, status = f'{{"error": "admin proxy: {e}"}}'.encode(), 502
            out_headers = [("Content-Type", "application/json")]
        self.send_response(status)
        for k, v in out_headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward

    def log_message(self, *args) -> None:
        pass


class AdminProxy:
    """`kubectl proxy` for a test: http://127.0.0.1:<port> → the control plane, as the admin."""

    def __init__(self, url_of, context_of):
        self.url_of, self.context_of = url_of, context_of  # () -> the HTTPS URL, () -> the admin's context
        handler = type("Forward", (_Forward,), {"target": self})
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, name="admin-proxy", daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def minimesh_command() -> list[str]:
    """The installed `minimesh` script beside this interpreter, else `python -m minimesh.cli`."""
    script = Path(sys.executable).with_name("minimesh")
    return [str(script)] if script.exists() else [sys.executable, "-m", "minimesh.cli"]


async def wait_for(condition, deadline_s: float = 10.0, interval: float = 0.05, what: str = "condition"):
    """Poll a condition (a coroutine function, or a plain one) until it returns something truthy, or fail."""
    deadline = time.monotonic() + deadline_s
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {deadline_s}s waiting for {what}")
        await asyncio.sleep(interval)


class ControlPlaneProcess:
    """A running control plane: `.url`, `.proc`, `.kill()`, `.restart()`, `.stop()`."""

    def __init__(self, home: Path, ttl: float, warmup: float, port: int = 0):
        self.home = Path(home)
        self.ttl, self.warmup, self.port = ttl, warmup, port
        self.url = ""  # the admin proxy (plain HTTP, as the admin)
        self.https_url = ""  # the control plane itself
        self._proxy: AdminProxy | None = None
        self._admin_ctx = None
        self.proc: subprocess.Popen | None = None
        self.log_path = self.home / "control.log"

    async def start(self, deadline_s: float = 15.0) -> None:
        url_file = self.home / "control" / "url"
        url_file.unlink(missing_ok=True)
        self.home.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "MINIMESH_CONTROL_WARMUP": str(self.warmup)}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*minimesh_command(), "control", "--port", str(self.port), "--home", str(self.home),
                 "--instance-ttl", str(self.ttl)],
                stdout=log, stderr=subprocess.STDOUT, env=env)

        async def healthy():
            if self.proc.poll() is not None:
                raise AssertionError(f"control plane exited with {self.proc.returncode}:\n{self.logs()}")
            if not url_file.exists():
                return False
            url = url_file.read_text().strip()
            try:
                async with aiohttp.ClientSession() as s, s.get(url + "/healthz", ssl=False) as r:
                    return url if r.status == 200 else False
            except aiohttp.ClientError:
                return False

        self.https_url = await wait_for(healthy, deadline_s, what="control plane /healthz")
        if self._proxy is None:
            self._proxy = AdminProxy(lambda: self.https_url, self.admin_context)
        self.url = self._proxy.url
        self._forget()  # a restart may have moved the real URL
        _BY_URL[self.url] = _BY_URL[self.https_url] = self

    def _forget(self) -> None:
        """Drop this control plane's URLs from the lookup: once it is gone, its ports go back to the
        machine, and a later server on one of them (a test's own fake) must not be taken for it."""
        for url in [url for url, cp in _BY_URL.items() if cp is self]:
            del _BY_URL[url]

    def admin_context(self):
        """The admin's TLS client context (from <home>/credentials), made once."""
        if self._admin_ctx is None:
            self._admin_ctx = operator_context("admin", self.home)
        return self._admin_ctx

    @property
    def ca_file(self) -> Path:
        """The mesh CA's certificate, as a sidecar is handed it (--control-ca)."""
        return credentials_dir(self.home) / CA_FILE

    def token(self, service: str) -> str:
        return issue_token(self.home, service)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no chance to clean up, like a crash."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        self._forget()
        if self._proxy is not None:
            self._proxy.close()
            self._proxy = None
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    async def restart(self) -> None:
        """Kill (if running) and start again with the same home; the URL may change."""
        self.kill()
        await self.start()


@contextlib.asynccontextmanager
async def run_control_plane(home, ttl: float = 10.0, warmup: float = 0.0):
    cp = ControlPlaneProcess(Path(home), ttl, warmup)
    try:
        await cp.start()
        yield cp
    finally:
        cp.stop()
