"""The /v1 HTTP API: thin handlers that turn JSON into ControlPlane calls.

Every answer is JSON, errors included: {"error": "one line"} with 400 for a
body the control plane cannot use, 401/403 for a caller the route does not
admit (access.py, checked before the body is read), 413 for a body over
1 MiB, 404 for an unknown route or object. The contract is in
notes/contracts.md ("Control plane HTTP API").
"""

from __future__ import annotations

import dataclasses
import logging

from aiohttp import web

from minimesh.config.secret import redacted
from minimesh.control.access import CALLER, MAX_BODY, Caller, Role, access_middleware, owns
from minimesh.control.admission import certificate_summary
from minimesh.control.bodies import BadBody, read_json
from minimesh.control.plane import ControlPlane
from minimesh.control.registry import InvalidRegistration, parse_registration
from minimesh.control.signing import TokenRefused
from minimesh.control.store import DEFAULT_NAMESPACE
from minimesh.control.telemetry_api import add_telemetry
from minimesh.control.watch import should_answer
from minimesh.errors import ConfigError
from minimesh.pki.ca import CSRRefused
from minimesh.pki.spiffe import GATEWAY_ACCOUNT

log = logging.getLogger("minimesh.control")

PLANE = web.AppKey("plane", ControlPlane)
MAX_WATCH_TIMEOUT = 300.0


def error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def json_errors(request: web.Request, handler):
    """One place where failures become JSON: bad bodies, unknown routes, wrong methods."""
    try:
        return await handler(request)
    except BadBody as e:
        return error(400, str(e))
    except web.HTTPException as e:
        if e.status < 400:
            raise
        message = (f"no route for {request.method} {request.path}" if e.status == 404
                   else f"request body over the limit of {MAX_BODY} bytes" if e.status == 413 else e.reason)
        return web.json_response({"error": message}, status=e.status, headers={
            k: v for k, v in e.headers.items() if k.lower() == "allow"})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def may_act_for_instance(plane: ControlPlane, caller: Caller, name: str) -> bool:
    """A workload may touch an instance only if it is unknown yet or registered under its own identity."""
    if caller.role is Role.ADMIN:
        return True
    inst = plane.registry.get(name)
    return inst is None or inst.registration.identity == caller.identity


async def register(request: web.Request) -> web.Response:
    plane = request.app[PLANE]
    caller = request[CALLER]
    try:
        body = await read_json(request)
        reg = parse_registration(body)
    except InvalidRegistration as e:
        raise BadBody(str(e)) from e
    if caller.role is Role.WORKLOAD:
        # Secure naming starts here: the endpoint's identity is the one the
        # certificate proved, never what the body claims.
        if not owns(caller, reg.account):
            return error(403, f"register: {caller.identity} may register instances of {caller.service!r} only, "
                              f"not of {reg.account!r}")
        if reg.identity not in (None, caller.identity):
            return error(403, f"register: identity {reg.identity} is not the one your certificate proves "
                              f"({caller.identity})")
        if not may_act_for_instance(plane, caller, reg.instance):
            return error(403, f"register: instance {reg.instance!r} belongs to another workload")
        reg = dataclasses.replace(reg, identity=caller.identity)
    try:
        certificate = certificate_summary(body.get("certificate"))  # what it holds now, for `minimesh status`
    except InvalidRegistration as e:
        raise BadBody(str(e)) from e
    plane.register(reg, certificate)
    return web.json_response({"ttl": plane.registry.ttl})


async def deregister(request: web.Request) -> web.Response:
    plane = request.app[PLANE]
    name = request.match_info["instance"]
    if not may_act_for_instance(plane, request[CALLER], name):
        return error(403, f"deregister: instance {name!r} belongs to another workload")
    if not plane.deregister(name):
        return error(404, f"no instance named {name!r}")
    return web.json_response({"deregistered": name})


async def instances(request: web.Request) -> web.Response:
    plane = request.app[PLANE]
    return web.json_response({"instances": [plane.instance_json(i) for i in plane.registry.instances()]})


def watch_params(request: web.Request) -> tuple[str, str, float]:
    node = request.query.get("node", "")
    if not node:
        raise BadBody("watch: the 'node' parameter names the asking proxy and is required")
    try:
        timeout = float(request.query.get("timeout", "30"))
    except ValueError as e:
        raise BadBody(f"watch: timeout must be a number of seconds, not {request.query['timeout']!r}") from e
    if not 0 <= timeout <= MAX_WATCH_TIMEOUT:
        raise BadBody(f"watch: timeout must be between 0 and {MAX_WATCH_TIMEOUT:g} seconds")
    return node, request.query.get("version", ""), timeout


async def watch(request: web.Request) -> web.Response:
    plane = request.app[PLANE]
    node, version, timeout = watch_params(request)

    def ready() -> bool:
        return should_answer(plane.snapshot_version, version, plane.held_for_warmup(version))

    if await plane.feed.wait_until(ready, timeout):
        # Only the ingress gateway's own certificate gets it the TLS Secrets (snapshot.py: secrets_for).
        return web.json_response(plane.snapshot(gateway=request[CALLER].service == GATEWAY_ACCOUNT))
    return web.Response(status=204)


async def ack(request: web.Request) -> web.Response:
    body = await read_json(request)
    node, version, err = body.get("node"), body.get("version"), body.get("error")
    if not isinstance(node, str) or not node or not isinstance(version, str):
        raise BadBody("ack: 'node' and 'version' must be strings")
    if err is not None and not isinstance(err, str):
        raise BadBody("ack: 'error' must be null (ACK) or a string (NACK)")
    if not may_act_for_instance(request.app[PLANE], request[CALLER], node):
        return error(403, f"ack: node {node!r} belongs to another workload")
    request.app[PLANE].ack(node, version, err)
    return web.json_response({"ok": True})


async def apply_config(request: web.Request) -> web.Response:
    body = await read_json(request)
    source = body.get("source") or "<api>"
    if not isinstance(source, str):
        raise BadBody("config: 'source' must be a string")
    try:
        result = request.app[PLANE].apply(body.get("manifests"), source)
    except ConfigError as e:
        log.info("apply %s refused: %s", source, e)
        return error(400, str(e).replace("\n", " "))
    return web.json_response({"version": result.version, "results": result.results,
                              "warnings": list(result.warnings)})


async def get_config(request: web.Request) -> web.Response:
    store = request.app[PLANE].store
    resources = [redacted(doc) for doc in store.resources(request.query.get("kind"))]  # never a Secret's key
    return web.json_response({"version": store.version, "resources": resources})


async def delete_config(request: web.Request) -> web.Response:
    plane = request.app[PLANE]
    kind, name = request.match_info["kind"], request.match_info["name"]
    namespace = request.query.get("namespace", DEFAULT_NAMESPACE)
    try:
        found = plane.delete(kind, name, namespace)
    except ConfigError as e:
        return error(400, str(e).replace("\n", " "))
    if not found:
        return error(404, f"no {kind} named {name!r} in namespace {namespace!r}")
    return web.json_response({"version": plane.store.version})


async def status(request: web.Request) -> web.Response:
    from minimesh.control.telemetry_api import HUB

    hub = request.app.get(HUB)
    return web.json_response({**request.app[PLANE].status(),
                              "ejections": hub.ejections.now() if hub is not None else []})


async def rollout(request: web.Request) -> web.Response:
    """GET /v1/rollout?version=N&timeout=S: long-poll until config N is ACKed by every proxy
    (converged) or NACKed by one (failed), or the timeout passes; answers where it stands."""
    plane = request.app[PLANE]
    try:
        version = int(request.query.get("version", plane.store.version))
        timeout = float(request.query.get("timeout", "0"))
    except ValueError as e:
        raise BadBody("rollout: version must be an integer and timeout a number of seconds") from e
    if not 0 <= version <= plane.store.version:
        raise BadBody(f"rollout: config version {version} does not exist (the newest is {plane.store.version})")
    if not 0 <= timeout <= MAX_WATCH_TIMEOUT:
        raise BadBody(f"rollout: timeout must be between 0 and {MAX_WATCH_TIMEOUT:g} seconds")
    await plane.rollout_feed.wait_until(lambda: plane.rollout(version).done, timeout)
    return web.json_response(plane.rollout(version).to_json())


async def sign(request: web.Request) -> web.Response:
    """POST /v1/sign {"service","instance","csr"}: the first certificate with
    `Authorization: Bearer <join token>`; a renewal with the certificate the caller holds."""
    caller = request[CALLER]
    auth = request.headers.get("Authorization", "")
    token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else None
    if caller.role is Role.ANONYMOUS and not token:
        # Refused before the body is read: no certificate and no token is nobody.
        request.app[PLANE].signer.refused += 1
        return error(403, "sign: a join token (Authorization: Bearer …) or a workload certificate is required; "
                          "get a token with `minimesh token SERVICE`")
    body = await read_json(request)
    service, instance, csr = body.get("service"), body.get("instance", ""), body.get("csr")
    if not isinstance(service, str) or not isinstance(csr, str) or not isinstance(instance, str):
        raise BadBody("sign: 'service' and 'csr' (PEM) must be strings")
    signer = request.app[PLANE].signer
    try:
        issued = signer.sign(service, instance, csr, token, peer=request.remote or "",
                             holder=caller.service if caller.role is Role.WORKLOAD else None)
    except TokenRefused as e:
        return error(403, str(e))
    except CSRRefused as e:
        log.info("refused CSR for %s (instance %s): %s", service, instance, e)
        return error(400, f"sign: {e}")
    cert = issued.certificate
    return web.json_response({"certificate": issued.pem, "trust_bundle": signer.trust_bundle,
                              "spiffe_id": issued.identity, "serial": issued.serial,
                              "not_after": cert.not_valid_after_utc.timestamp()})


def build_app(plane: ControlPlane) -> web.Application:
    # Outermost first: failures become JSON; then who is calling, before any body is read.
    app = web.Application(middlewares=[json_errors, access_middleware()], client_max_size=MAX_BODY)
    app[PLANE] = plane
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/v1/register", register)
    app.router.add_get("/v1/instances", instances)
    app.router.add_delete("/v1/instances/{instance}", deregister)
    app.router.add_get("/v1/watch", watch)
    app.router.add_post("/v1/ack", ack)
    app.router.add_post("/v1/config", apply_config)
    app.router.add_get("/v1/config", get_config)
    app.router.add_delete("/v1/config/{kind}/{name}", delete_config)
    app.router.add_get("/v1/status", status)
    add_telemetry(app, plane)  # /v1/telemetry, /v1/stat, /v1/tap, /v1/traces (telemetry_api.py)
    app.router.add_post("/v1/sign", sign)
    app.router.add_get("/v1/rollout", rollout)
    return app
