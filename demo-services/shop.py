"""What every app in the toy shop shares: who it is, its fault knobs, and how it calls others.

An app inside a mesh has very little to do. It says who it is (so that versions
and load balancing are visible with curl alone), and on every call it makes to
another service it forwards the trace headers of the request it is serving —
the mesh cannot do that for it, because only the app knows which outgoing call
belongs to which incoming request. Everything else (retries, timeouts, mTLS,
routing) is the sidecar's job: the app just calls `http://catalog/items` with
HTTP_PROXY pointing at its sidecar.

The environment (set by `minimesh up` or docker compose):

    PORT, HOST                 where to listen (default 127.0.0.1:8080)
    SERVICE, VERSION, INSTANCE who we are (default: file name, v1, name-version-pid)
    HTTP_PROXY                 the sidecar's outbound listener
    <NAME>_URL                 e.g. CATALOG_URL: call that service directly, no mesh
    FORWARD_TRACE_HEADERS      1 (default); 0 stops forwarding the trace headers
                               (lesson 05's break-it: the trace falls apart)
    FAILURE_RATE, DELAY_MS     fault knobs, also changeable with PUT /_fault
    SEED                       seed of the failure dice (default: crc32 of INSTANCE)
"""

import asyncio
import json
import logging
import os
import random
import sys
import zlib
from dataclasses import dataclass, field

from aiohttp import ClientError, ClientSession, ClientTimeout, TCPConnector, web

log = logging.getLogger("shop")

# Headers that tie one request's hops into one trace (W3C trace-context and
# Zipkin B3), plus x-request-id and end-user, which routing lessons match on.
FORWARDED_HEADERS = (
    "traceparent", "tracestate",
    "b3", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags",
    "x-request-id", "end-user",
)
TRACE_HEADERS = FORWARDED_HEADERS[:8]
FORWARD_TRACE_HEADERS = os.environ.get("FORWARD_TRACE_HEADERS", "1").strip().lower() not in ("0", "false", "no")


@dataclass(frozen=True)
class Identity:
    service: str
    version: str
    instance: str

    @classmethod
    def from_env(cls, default_service: str) -> "Identity":
        service = os.environ.get("SERVICE", default_service)
        version = os.environ.get("VERSION", "v1")
        instance = os.environ.get("INSTANCE", f"{service}-{version}-{os.getpid()}")
        return cls(service, version, instance)

    def as_dict(self) -> dict:
        return {"service": self.service, "version": self.version, "instance": self.instance}


@dataclass
class Faults:
    """The two fault knobs, and the seeded dice that decide which requests fail."""

    failure_rate: float = 0.0
    delay_ms: float = 0.0
    rng: random.Random = field(default_factory=random.Random)

    def update(self, changes: dict) -> None:
        """Apply {"failure_rate": .., "delay_ms": ..} (either optional); ValueError says what is wrong."""
        unknown = set(changes) - {"failure_rate", "delay_ms"}
        if unknown:
            raise ValueError(f"unknown fault knob(s): {', '.join(sorted(unknown))}")
        rate = changes.get("failure_rate", self.failure_rate)
        delay = changes.get("delay_ms", self.delay_ms)
        if not _is_number(rate) or not 0 <= rate <= 1:
            raise ValueError(f"failure_rate must be a number from 0 to 1, got {rate!r}")
        if not _is_number(delay) or delay < 0:
            raise ValueError(f"delay_ms must be a number >= 0, got {delay!r}")
        self.failure_rate, self.delay_ms = float(rate), float(delay)

    def should_fail(self) -> bool:
        return self.rng.random() < self.failure_rate

    def as_dict(self) -> dict:
        return {"failure_rate": self.failure_rate, "delay_ms": self.delay_ms}


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


IDENTITY = web.AppKey("identity", Identity)
FAULTS = web.AppKey("faults", Faults)
CLIENT = web.AppKey("client", ClientSession)
UNFAULTED = web.AppKey("unfaulted", frozenset)


# --- answering ---------------------------------------------------------------


def reply(request: web.Request, payload: dict, status: int = 200) -> web.Response:
    """A JSON answer that names who served it."""
    return web.json_response({**payload, **request.app[IDENTITY].as_dict()}, status=status)


def bad_request(request: web.Request, message: str) -> web.HTTPBadRequest:
    body = {"error": message, **request.app[IDENTITY].as_dict()}
    return web.HTTPBadRequest(text=json.dumps(body), content_type="application/json")


async def read_json(request: web.Request, *, required: bool = True) -> dict:
    """The request's JSON object body; raises 400 if it is not one ({} if empty and not required)."""
    raw = await request.read()
    if not raw.strip() and not required:
        return {}
    try:
        body = json.loads(raw)
    except ValueError as e:
        raise bad_request(request, f"body is not valid JSON: {e}") from e
    if not isinstance(body, dict):
        raise bad_request(request, "body must be a JSON object")
    return body


# --- faults ------------------------------------------------------------------

# Never faulted: a broken health check or fault knob would hide the lesson.
ALWAYS_HEALTHY = ("/healthz", "/_fault")


@web.middleware
async def inject_faults(request: web.Request, handler):
    faults = request.app[FAULTS]
    if request.path not in request.app[UNFAULTED]:
        # Take the whole request in before stalling, as a busy server would: if the
        # client hangs up during the delay, the body is still here to act on.
        await request.read()
        # Delay first, then the dice: a slow request can still fail, like a real overloaded server.
        if faults.delay_ms:
            await asyncio.sleep(faults.delay_ms / 1000)
        if faults.should_fail():
            return reply(request, {"error": f"injected failure (failure_rate={faults.failure_rate})",
                                   "injected": True}, status=503)
    return await handler(request)


async def healthz(request: web.Request) -> web.Response:
    return reply(request, {"status": "ok"})


async def get_fault(request: web.Request) -> web.Response:
    return reply(request, request.app[FAULTS].as_dict())


async def put_fault(request: web.Request) -> web.Response:
    faults = request.app[FAULTS]
    try:
        faults.update(await read_json(request))
    except ValueError as e:
        raise bad_request(request, str(e)) from e
    log.info("fault knobs now failure_rate=%s delay_ms=%s", faults.failure_rate, faults.delay_ms)
    return reply(request, faults.as_dict())


# --- calling other services --------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What one upstream call produced: its status (None if no answer) and JSON body."""

    service: str
    status: int | None
    body: dict
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def who(self) -> dict:
        """Who answered, for the `upstreams` list (the mesh's own errors have no identity)."""
        who = {"service": self.body.get("service", self.service), "version": self.body.get("version"),
               "instance": self.body.get("instance"), "status": self.status}
        if self.error:
            who["error"] = self.error
        return who


def where_is(service: str) -> tuple[str | None, str | None]:
    """(base URL, proxy) for a service: <NAME>_URL directly, else http://<name> through the sidecar."""
    direct = os.environ.get(f"{service.upper()}_URL")
    if direct:
        return direct.rstrip("/"), None
    proxy = os.environ.get("HTTP_PROXY")
    if proxy:
        return f"http://{service}", proxy
    return None, None


async def call(request: web.Request, service: str, method: str, path: str, **kwargs) -> Answer:
    """Call another service on behalf of `request`, forwarding its trace headers."""
    base, proxy = where_is(service)
    if base is None:
        return Answer(service, None, {}, f"don't know where {service} is: set {service.upper()}_URL or HTTP_PROXY")
    headers = {h: request.headers[h] for h in FORWARDED_HEADERS if h in request.headers
               and (FORWARD_TRACE_HEADERS or h not in TRACE_HEADERS)}
    try:
        async with request.app[CLIENT].request(method, base + path, headers=headers, proxy=proxy, **kwargs) as resp:
            try:
                body = await resp.json(content_type=None)
            except ValueError:
                body = None
            error = resp.headers.get("x-minimesh-error")  # set when the mesh itself answered
            return Answer(service, resp.status, body if isinstance(body, dict) else {}, error)
    except (ClientError, asyncio.TimeoutError) as e:
        return Answer(service, None, {}, f"{type(e).__name__}: {e}".rstrip(": "))


# --- the app -------------------------------------------------------------------


async def _client_session(app: web.Application):
    # One pooled, keep-alive session per app; a generous timeout so the mesh's own
    # timeouts (a lesson) are what a learner sees, not ours.
    app[CLIENT] = ClientSession(connector=TCPConnector(limit=100), timeout=ClientTimeout(total=30))
    yield
    await app[CLIENT].close()


def create_app(default_service: str, routes: list, *, unfaulted: tuple = ()) -> web.Application:
    """An app with identity, fault knobs, /healthz, /_fault and a client session; exits on bad env.

    `unfaulted`: extra paths the fault knobs never touch (bookkeeping, not shop traffic).
    """
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    identity = Identity.from_env(default_service)
    seed = os.environ.get("SEED")
    try:
        # crc32, not hash(): Python salts str hashes per process, and a seed must repeat.
        faults = Faults(rng=random.Random(int(seed) if seed else zlib.crc32(identity.instance.encode())))
        faults.update({"failure_rate": float(os.environ.get("FAILURE_RATE", 0)),
                       "delay_ms": float(os.environ.get("DELAY_MS", 0))})
    except ValueError as e:
        sys.exit(f"{identity.service}: bad FAILURE_RATE/DELAY_MS/SEED: {e}")
    app = web.Application(middlewares=[inject_faults])
    app[IDENTITY], app[FAULTS] = identity, faults
    app[UNFAULTED] = frozenset(ALWAYS_HEALTHY + tuple(unfaulted))
    app.cleanup_ctx.append(_client_session)
    app.add_routes([web.get("/healthz", healthz), web.get("/_fault", get_fault), web.put("/_fault", put_fault)])
    app.add_routes(routes)
    return app


def run(app: web.Application) -> None:
    """Serve until SIGTERM/SIGINT, with a one-line access log per request."""
    host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", 8080))
    identity = app[IDENTITY]
    log.info("%s %s (%s) listening on %s:%s", identity.service, identity.version, identity.instance, host, port)
    web.run_app(app, host=host, port=port, print=None, shutdown_timeout=5,
                access_log=logging.getLogger(f"shop.{identity.service}.access"),
                access_log_format='"%r" %s %Tfs',
                # Keep running a handler whose client hung up: a payment that was
                # being charged still gets charged (see payments.py).
                handler_cancellation=False)
