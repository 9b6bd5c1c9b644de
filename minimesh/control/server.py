"""Starting and running the control plane process (`minimesh control`).

`start_control_plane` builds the state, binds the listener and starts the
background expiry task; it returns the runner and the base URL, so tests and
tools can run a control plane inside their own event loop. The listener is
HTTPS only, with a certificate from the mesh CA; the admin's and a viewer's
client certificates are written beside it into `<home>/credentials` when
missing (pki/operator.py), so the CLI finds them there. The blocking
`run_control_plane` is what the CLI calls: it also sets up logging, uses
uvloop when installed, and stops cleanly on SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import time
from pathlib import Path
from typing import Callable

from aiohttp import web

from minimesh.control.api import PLANE, build_app
from minimesh.control.plane import ControlPlane
from minimesh.control.store import atomic_write
from minimesh.errors import UserError
from minimesh.pki.ca import DEFAULT_LEAF_TTL
from minimesh.pki.operator import credentials_dir, server_context, server_credentials, write_operator_credentials

log = logging.getLogger("minimesh.control")

WARMUP_ENV = "MINIMESH_CONTROL_WARMUP"  # seconds; tests set 0 to skip the warm-up hold


def expiry_interval(ttl: float) -> float:
    """Check a few times per TTL, so an instance leaves soon after it falls silent."""
    return min(1.0, max(0.05, ttl / 4))


async def _expire_forever(plane: ControlPlane) -> None:
    while True:
        await asyncio.sleep(expiry_interval(plane.registry.ttl))
        plane.expire()


async def _background(app: web.Application):
    plane = app[PLANE]
    task = asyncio.create_task(_expire_forever(plane))
    # Held watches must be answered the moment the warm-up ends.
    timer = asyncio.get_running_loop().call_later(plane.warmup, plane.feed.notify)
    yield
    timer.cancel()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def apply_initial_config(plane: ControlPlane, files: tuple[str, ...]) -> None:
    """A lesson's starting config (`--initial-config`), on a first start only: what was applied since stays."""
    if not files or plane.store.version != 0:
        return
    from minimesh.config import load_files

    resources = load_files(files)  # a bad file: ConfigError, one line naming file:line:field
    plane.apply([r.manifest for r in resources], source=", ".join(Path(f).name for f in files))
    log.info("applied the initial config %s: version %d", ", ".join(files), plane.store.version)


def _url_host(host: str) -> str:
    return "127.0.0.1" if host in ("", "0.0.0.0") else host


async def start_control_plane(host: str, port: int, home: str | os.PathLike, instance_ttl: float,
                              warmup: float = 2.0, clock: Callable[[], float] = time.monotonic,
                              cert_ttl: float = DEFAULT_LEAF_TTL, initial_config: tuple[str, ...] = ()
                              ) -> tuple[web.AppRunner, str]:
    """Start listening; returns (runner, base URL). Stop with `await runner.cleanup()`."""
    plane = ControlPlane(Path(home), instance_ttl, warmup=warmup, clock=clock, cert_ttl=cert_ttl)
    apply_initial_config(plane, initial_config)
    write_operator_credentials(plane.signer.ca, credentials_dir(plane.home))
    tls = server_context(server_credentials(plane.signer.ca, (host,) if host not in ("", "0.0.0.0") else ()))
    app = build_app(plane)
    app.cleanup_ctx.append(_background)
    # Open watches are long polls a sidecar simply re-opens, so shutdown need
    # not wait for them.
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=tls)
    try:
        await site.start()
    except OSError as e:
        await runner.cleanup()
        if e.errno == errno.EADDRINUSE:
            raise UserError(f"port {port} is already in use (control plane); "
                            "stop whatever holds it or pass --port 0") from e
        raise UserError(f"cannot listen on {host}:{port} (control plane): {e.strerror}") from e
    bound_port = runner.addresses[0][1]
    url = f"https://{_url_host(host)}:{bound_port}"
    atomic_write(plane.home / "control" / "url", url + "\n")
    log.info("control plane listening on %s (config version %d, instance ttl %.1fs, warm-up %.1fs, "
             "certificate ttl %.0fs, CA root serial %x)", url, plane.store.version, instance_ttl, warmup,
             cert_ttl, plane.signer.ca.cert.serial_number)
    return runner, url


async def _serve(host: str, port: int, home: str, instance_ttl: float, warmup: float, cert_ttl: float,
                 initial_config: tuple[str, ...] = ()) -> None:
    runner, _url = await start_control_plane(host, port, home, instance_ttl, warmup, cert_ttl=cert_ttl,
                                             initial_config=initial_config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("control plane stopping")
        await runner.cleanup()


def run_control_plane(host: str, port: int, home: str, instance_ttl: float, warmup: float | None = None,
                      cert_ttl: float = DEFAULT_LEAF_TTL, initial_config: tuple[str, ...] = ()) -> None:
    """Blocking entry point of `minimesh control`; warm-up defaults to $MINIMESH_CONTROL_WARMUP or 2 s."""
    from minimesh.logs import run_async, setup_logging

    setup_logging()
    if warmup is None:
        warmup = float(os.environ.get(WARMUP_ENV, "2.0"))
    run_async(_serve(host, port, home, instance_ttl, warmup, cert_ttl, initial_config))
