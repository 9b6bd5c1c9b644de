"""`minimesh stop INSTANCE` and `minimesh start INSTANCE`: take one instance out, bring it back.

This is a pod being deleted and rescheduled, done gracefully, so that no
request is lost (the canary lesson measures it under load):

    stop   1. SIGTERM to the sidecar: it leaves the registry first, so every
              caller's next snapshot no longer lists it; it keeps serving for
              DRAIN_GRACE (proxy/sidecar.py) while those snapshots land, then
              closes its listeners once the requests in flight have finished;
           2. only when the sidecar has exited: SIGTERM to the app — never
              while its sidecar may still hand it a request.
    start  1. the app, until it listens;
           2. its sidecar, until /ready (registered and holding a snapshot):
              only then do callers' snapshots list it, so no request finds a
              door that is not open yet.

The supervisor owns the processes, so these commands ask it over a small
HTTPS API on 127.0.0.1 (its address is `supervisor_url` in state.json) —
`POST /instances/NAME/stop` and `/start` — and it answers when it is done.
Any local process can reach 127.0.0.1, so the API is the control plane's
kind: a certificate from the mesh CA, and only the admin's will do
(control/access.py) — checked before anything else happens.
A stopped instance stays stopped (no restarts) until it is started again.

`minimesh stop control` does the same for the control plane (lesson 04's
break-it: watch certificates expire while it is away). A crashed control
plane is restarted within seconds, as Kubernetes restarts a crashed istiod;
a stopped one stays away until `minimesh start control`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request

from aiohttp import web

from minimesh.control.access import Role, access_middleware
from minimesh.errors import UserError
from minimesh.pki.ca import CertificateAuthority
from minimesh.pki.operator import server_context, server_credentials
from minimesh.runner import state as st
from minimesh.runner.control_client import opener_for
from minimesh.runner.readiness import wait_ready

log = logging.getLogger("minimesh.runner")

START_TIMEOUT = 30.0
SUPERVISOR_RULES = {("POST", "/instances/{name}/{action}"): frozenset({Role.ADMIN})}


class InstanceControl:
    """Stop and start one instance's pair of children (app + sidecar) inside a running Supervisor."""

    def __init__(self, supervisor):
        self.sup = supervisor
        self.stopped: set[str] = set()
        self.supervising: dict[str, asyncio.Task] = {}
        self._lock = asyncio.Lock()  # one change at a time: a stop racing a start helps nobody
        self._runner: web.AppRunner | None = None
        self.url: str | None = None

    def pair(self, name: str):
        """The children of `name` in start order: (app, sidecar), or the control plane alone."""
        if name == "control":
            return (self.sup.children["control"],)
        app, sidecar = self.sup.children.get(name), self.sup.children.get(f"{name}.sidecar")
        if app is None or sidecar is None or app.spec.role != "app":
            names = ", ".join(ip.instance for ip in self.sup.plan.instances)
            raise LookupError(f"no instance named {name!r}; the instances are: {names} (and control)")
        return app, sidecar

    def supervise(self, child) -> None:
        """(Re)start the restart-on-crash loop of one child."""
        self.supervising[child.spec.name] = asyncio.ensure_future(child.supervise())

    async def stop(self, name: str) -> dict:
        async with self._lock:
            children = self.pair(name)
            if name in self.stopped:
                return {"instance": name, "state": "stopped", "seconds": 0.0, "changed": False}
            started = time.monotonic()
            self.stopped.add(name)
            # Sidecar first, and wait for it to exit: it deregisters, drains, closes.
            for child in reversed(children):
                await child.stop(self.sup.grace)
            self.sup._changed(children[0])
            took = time.monotonic() - started
            log.info("stopped %s in %.1fs (sidecar drained first, then the app)", name, took)
            return {"instance": name, "state": "stopped", "seconds": round(took, 3), "changed": True}

    async def start(self, name: str) -> dict:
        async with self._lock:
            children = self.pair(name)
            if name not in self.stopped:
                return {"instance": name, "state": "running", "seconds": 0.0, "changed": False}
            started = time.monotonic()
            deadline = started + START_TIMEOUT
            for child in children:  # the app until it listens, then its sidecar until /ready
                child.stopping = False
                await child.start()
                await wait_ready([child], deadline)
            self.stopped.discard(name)
            for child in children:
                self.supervise(child)
            self.sup._changed(children[0])
            took = time.monotonic() - started
            log.info("started %s in %.1fs", name, took)
            return {"instance": name, "state": "running", "seconds": round(took, 3), "changed": True}

    # --- the supervisor's small HTTP API ----------------------------------------

    async def serve(self) -> str:
        ca = CertificateAuthority.load_or_create(self.sup.home / "control")
        app = web.Application(middlewares=[access_middleware(SUPERVISOR_RULES)], client_max_size=4096)
        app.router.add_post("/instances/{name}/{action:stop|start}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=server_context(server_credentials(ca)))
        await site.start()
        self.url = f"https://127.0.0.1:{self._runner.addresses[0][1]}"
        return self.url

    async def _handle(self, request: web.Request) -> web.Response:
        name, action = request.match_info["name"], request.match_info["action"]
        try:
            result = await (self.stop(name) if action == "stop" else self.start(name))
        except LookupError as e:
            return web.json_response({"error": str(e.args[0])}, status=404)
        except UserError as e:
            return web.json_response({"error": str(e)}, status=500)
        return web.json_response(result)

    async def close(self) -> None:
        for task in self.supervising.values():
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()


# --- the CLI side ------------------------------------------------------------------


def change(name: str, action: str, *, home: str | None = None) -> dict:
    """Ask the running stack's supervisor to stop or start `name`; returns its answer."""
    home_path = st.resolve_home(home)
    state = st.read_state(home_path)
    if not state or not st.is_locked(home_path):
        raise UserError(f"no stack is running in {home_path}; start one with `minimesh up LESSON_DIR`")
    url = state.get("supervisor_url")
    if not url:
        raise UserError("this stack's supervisor takes no instance commands yet (still starting?); try again")
    req = urllib.request.Request(f"{url}/instances/{urllib.parse.quote(name)}/{action}", data=b"", method="POST")
    try:
        with opener_for(url, home_path).open(req, timeout=START_TIMEOUT + 15) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as e:
        raise UserError(json.loads(e.read() or b"{}").get("error") or f"supervisor answered {e.code}") from e
    except (urllib.error.URLError, OSError) as e:
        raise UserError(f"cannot reach the stack's supervisor at {url} ({e}); is the stack running?") from e


def describe(answer: dict, action: str) -> str:
    if not answer.get("changed"):
        return f"{answer['instance']} is already {answer['state']}"
    if answer["instance"] == "control":
        how = ("stopped; it stays away (no restarts) until `minimesh start control`" if action == "stop"
               else "started and answering")
        return f"the control plane {how} ({answer['seconds']:.1f}s)"
    how = "drained and stopped" if action == "stop" else "started and ready"
    return f"{answer['instance']} {how} in {answer['seconds']:.1f}s"
