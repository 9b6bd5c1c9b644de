"""Start a toy-shop service (demo-services/<name>.py) as a real subprocess on a free port.

    with start_service("payments", env={"FAILURE_RATE": "0.3"}) as payments:
        requests go to payments.url ...

The child gets a clean shop environment (no proxy or *_URL variables leaking
in from the machine), logs to a temp file, and is ready when /healthz answers.
On stop the log is printed, so pytest shows it beside a failing test.
"""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

SERVICES_DIR = Path(__file__).resolve().parents[2] / "demo-services"

# Variables the shop reads: a caller's machine must not set them by accident.
SHOP_ENV = ("SERVICE", "VERSION", "INSTANCE", "HOST", "PORT", "FAILURE_RATE", "DELAY_MS", "SEED", "PRICING_BUG",
            "CATALOG_URL", "PRICING_URL", "PAYMENTS_URL", "WEB_URL",
            "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServiceHandle:
    """A running demo service: `.url`, `.port`, `.pid`, `.logs()`, `.stop()`; a context manager."""

    def __init__(self, name: str, port: int, process: subprocess.Popen, log_path: Path):
        self.name, self.port, self.process, self.log_path = name, port, process, log_path
        self.url = f"http://127.0.0.1:{port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, echo_logs: bool = True) -> int | None:
        """SIGTERM, then SIGKILL after 5 s; prints the log (pytest shows it only if the test failed)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if echo_logs:
            print(f"----- {self.name} on :{self.port} (exit {self.process.returncode}) -----\n{self.logs()}")
        self.log_path.unlink(missing_ok=True)
        return self.process.returncode

    def __enter__(self) -> "ServiceHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class ServiceFailedToStart(RuntimeError):
    pass


def start_service(name: str, env: dict | None = None, port: int | None = None,
                  ready_timeout: float = 15.0) -> ServiceHandle:
    """Start demo-services/<name>.py and return once GET /healthz answers 200.

    `env` adds to (and overrides) the shop variables. With `port=None` a free
    port is picked; if another process grabs it first, we try a new one.
    """
    attempts = 1 if port is not None else 3
    for attempt in range(attempts):
        handle = _spawn(name, env or {}, port or free_port())
        try:
            _wait_ready(handle, ready_timeout)
            return handle
        except ServiceFailedToStart:
            log = handle.logs()
            handle.stop(echo_logs=False)
            if attempt + 1 < attempts and "address already in use" in log.lower():
                continue
            raise ServiceFailedToStart(f"{name} did not become ready:\n{log}") from None
    raise AssertionError("unreachable")


async def astart_service(name: str, env: dict | None = None, port: int | None = None) -> ServiceHandle:
    """start_service for async tests, without blocking the event loop while it waits."""
    return await asyncio.to_thread(start_service, name, env, port)


def _spawn(name: str, env: dict, port: int) -> ServiceHandle:
    child_env = {k: v for k, v in os.environ.items() if k not in SHOP_ENV}
    child_env.update({"PORT": str(port), "PYTHONUNBUFFERED": "1"}, **{k: str(v) for k, v in env.items()})
    fd, path = tempfile.mkstemp(prefix=f"shop-{name}-", suffix=".log")
    with os.fdopen(fd, "wb") as log:
        process = subprocess.Popen([sys.executable, str(SERVICES_DIR / f"{name}.py")], env=child_env,
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   cwd=SERVICES_DIR.parent)
    return ServiceHandle(name, port, process, Path(path))


# Straight to 127.0.0.1: the test machine's own proxy settings must not apply.
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _wait_ready(handle: ServiceHandle, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if handle.process.poll() is not None:
            raise ServiceFailedToStart(f"exited with {handle.process.returncode}")
        try:
            with _direct.open(f"{handle.url}/healthz", timeout=1) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.05)  # a poll interval, not a stand-in for synchronisation
    raise ServiceFailedToStart(f"no 200 from /healthz within {timeout} s")


async def start_app(handler):
    """A one-handler aiohttp app in this test's own loop, on a free port: (runner to clean up, port)."""
    from aiohttp import web

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, runner.addresses[0][1]


async def serve_routes(*routes) -> tuple["object", int]:
    """A small in-process aiohttp app (an echo, a key server) on a free port: (runner to clean up, port)."""
    from aiohttp import web

    app = web.Application()
    app.add_routes(list(routes))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port
