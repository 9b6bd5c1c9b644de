"""The local supervisor: bring a lesson's stack up, keep it up, take it down.

Start-up runs in three waves, each started concurrently and polled
concurrently, because a 2-core laptop spends most of start-up importing Python:

1. the control plane and every app (apps do not need the mesh to listen);
2. once the control plane answers /healthz: the lesson's manifests are applied,
   then every sidecar and the gateway start;
3. once every probe passes and every proxy has ACKed the control plane's
   current snapshot, state.json says "ready" and `on_ready` runs.

Then the supervisor only waits: a child that dies is restarted (see
process.py), and SIGTERM or SIGINT stops everything — proxies first, so they
can deregister while the control plane still listens, then apps and the
control plane — and removes state.json.
"""

import asyncio
import logging
import os
import signal
import time
from pathlib import Path

from minimesh.errors import UserError
from minimesh.pki.operator import ensure_operator_credentials
from minimesh.pki.tokens import join_token, load_or_create_secret
from minimesh.runner import persist
from minimesh.runner import state as st
from minimesh.runner.control_client import ControlClient, tls_for
from minimesh.runner.instances import InstanceControl
from minimesh.runner.plan import HOST, StackPlan, plan_stack
from minimesh.runner.ports import GATEWAY_HINT, GATEWAY_HTTPS_PORT, PortAllocator, ensure_free, is_free
from minimesh.runner.process import Child, ChildFailed
from minimesh.runner.readiness import wait_converged, wait_ready
from minimesh.runner.topology import Lesson

log = logging.getLogger("minimesh.runner")

READY_TIMEOUT = 60.0
STOP_GRACE = 5.0


class Supervisor:
    def __init__(self, lesson: Lesson, home: Path, gateway_port: int, *,
                 ready_timeout: float = READY_TIMEOUT, grace: float = STOP_GRACE, clock=time.monotonic):
        self.lesson = lesson
        self.home = home
        self.ready_timeout = ready_timeout
        self.grace = grace
        self.clock = clock
        ports = PortAllocator()
        any_port = gateway_port == 0  # `--gateway-port 0` (tests): the HTTPS port is any free one too
        if gateway_port == 0:
            gateway_port = ports.allocate()
        else:
            ensure_free(gateway_port, "gateway", GATEWAY_HINT)
            ports.reserve(gateway_port)
        # The runner is the operator here: it issues every proxy its join token
        # from the control plane's secret (made now if this home has none yet).
        secret = load_or_create_secret(Path(home) / "control")
        # ...and makes the mesh CA with the admin's and a viewer's client certificates
        # (pki/operator.py), so every CLI command against this home finds them.
        ensure_operator_credentials(home)
        # The HTTPS port (Gateway servers on 443): 8443 beside the usual 8080 when free, else any free port.
        https_port = (GATEWAY_HTTPS_PORT if not any_port and gateway_port != GATEWAY_HTTPS_PORT
                      and is_free(GATEWAY_HTTPS_PORT) else ports.allocate())
        ports.reserve(https_port)
        self.plan: StackPlan = plan_stack(lesson, home, gateway_port, ports.allocate, https_port=https_port,
                                          token_for=lambda service: join_token(secret, service),
                                          cert_ttl=os.environ.get("MINIMESH_CERT_TTL") or lesson.cert_ttl)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "MINIMESH_HOME": str(home),
               "MINIMESH_STACK": str(home)}  # the marker `down` looks for before killing a pid
        logs = st.logs_dir(home)
        self.children = {p.name: Child(p, logs / f"{p.name}.log", env, on_change=self._changed)
                         for p in self.plan.processes}
        # Config kept from this lesson's last run stays as the learner left it
        # (persist.py); only a fresh config gets the lesson's starting manifests.
        self.kept_config = persist.has_kept_config(Path(home))
        self.status = "starting"
        self.instance_control: InstanceControl | None = None  # `minimesh stop/start INSTANCE`
        self.started_at = time.time()
        self._stop = asyncio.Event()

    # --- state.json -----------------------------------------------------------

    def state(self) -> dict:
        by_name = self.children
        instances = []
        for ip in self.plan.instances:
            instances.append({
                "service": ip.service, "version": ip.version, "instance": ip.instance,
                "app": f"{HOST}:{ip.app_port}", "inbound": f"{HOST}:{ip.inbound_port}",
                "outbound": f"{HOST}:{ip.outbound_port}", "admin": f"{HOST}:{ip.admin_port}",
                "pids": {"app": by_name[ip.instance].pid, "sidecar": by_name[f"{ip.instance}.sidecar"].pid},
                "state": "stopped" if self.instance_control and ip.instance in self.instance_control.stopped
                         else "running",
            })
        return {
            "lesson": str(self.lesson.dir), "title": self.lesson.title, "home": str(self.home),
            "control_url": self.plan.control_url, "gateway_url": self.plan.gateway_url,
            "gateway_https_url": self.plan.gateway_https_url,
            "supervisor_pid": os.getpid(), "started_at": self.started_at, "status": self.status,
            "supervisor_url": self.instance_control.url if self.instance_control else None,
            "logs": str(st.logs_dir(self.home)), "instances": instances,
            "processes": {c.spec.name: {"role": c.spec.role, "pid": c.pid, "ports": list(c.spec.ports),
                                        "restarts": c.restarts, "log": str(c.log_path)}
                          for c in self.children.values()},
        }

    def _changed(self, child: Child) -> None:
        if self.status != "stopping":
            st.write_state(self.home, self.state())

    # --- lifecycle ---------------------------------------------------------------

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self, on_ready=lambda state: None) -> None:
        """Start the stack, call `on_ready(state)`, supervise until stopped; always clean up."""
        lock = st.HomeLock(self.home)
        if not lock.acquire():
            raise UserError(f"a stack is already running in {self.home}; "
                            "`minimesh down` stops it (or set MINIMESH_HOME for a second one)")
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        try:
            st.logs_dir(self.home).mkdir(parents=True, exist_ok=True)
            st.write_state(self.home, self.state())
            startup = asyncio.ensure_future(self._start())
            stopped = asyncio.ensure_future(self._stop.wait())
            await asyncio.wait([startup, stopped], return_when=asyncio.FIRST_COMPLETED)
            if not startup.done():
                startup.cancel()
                log.info("stopped during start-up")
                return
            stopped.cancel()
            startup.result()  # raises the start-up error, if any
            self.instance_control = InstanceControl(self)
            for c in self.children.values():
                self.instance_control.supervise(c)
            await self.instance_control.serve()
            self.status = "ready"
            st.write_state(self.home, self.state())
            on_ready(self.state())
            await self._stop.wait()
            log.info("stopping the stack")
        finally:
            self.status = "stopping"
            await self._shutdown()
            if self.instance_control is not None:
                await self.instance_control.close()
            st.remove_state(self.home)
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            lock.release()

    async def _start(self) -> None:
        started = self.clock()
        deadline = started + self.ready_timeout
        control = self.children["control"]
        apps = [self.children[p.name] for p in self.plan.workloads if p.role == "app"]
        proxies = [self.children[p.name] for p in self.plan.workloads if p.role == "sidecar"]
        proxies.append(self.children["gateway"])

        try:
            # Wave 1: the control plane and the apps.
            await asyncio.gather(*(c.start() for c in [control, *apps]))
            await wait_ready([control], deadline, self.clock)
            log.info("control plane ready after %.1fs", self.clock() - started)
            # Wave 2: the lesson's starting config, then the proxies that will fetch it.
            self._apply_manifests()
            await asyncio.gather(*(c.start() for c in proxies))
        except ChildFailed as e:
            raise UserError(f"{e.child.spec.name}: {e}") from e
        # Wave 3: everyone answers, and every proxy holds the same, latest snapshot.
        await wait_ready([*apps, *proxies], deadline, self.clock)
        log.info("every process ready after %.1fs", self.clock() - started)
        nodes = {c.spec.instance for c in proxies}
        await wait_converged(control.spec.probe.port, nodes, deadline, self.clock,
                             tls=tls_for(self.plan.control_url, self.home))
        log.info("every proxy in sync after %.1fs", self.clock() - started)

    def _apply_manifests(self) -> None:
        if not self.lesson.manifests:
            return
        if self.kept_config:
            log.info("kept the config of this lesson's last run; `minimesh up --fresh` starts clean")
            return
        from minimesh.config import load_files  # imported late: only lessons with manifests need it

        resources = load_files([str(p) for p in self.lesson.manifests])
        source = ", ".join(p.name for p in self.lesson.manifests)
        answer = ControlClient(self.plan.control_url, home=self.home).apply([r.manifest for r in resources], source)
        log.info("applied %s: config version %s", source, answer.get("version"))

    async def _shutdown(self) -> None:
        for c in self.children.values():
            c.stopping = True  # no restarts from here on
        proxies = [c for c in self.children.values() if c.spec.role in ("sidecar", "gateway")]
        rest = [c for c in self.children.values() if c.spec.role not in ("sidecar", "gateway")]
        for wave in (proxies, rest):
            await asyncio.gather(*(c.stop(self.grace) for c in wave))
