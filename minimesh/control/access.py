"""Who may call which route of the control plane, decided before a body is read.

Theory of operation. The API is served over TLS and asks every client for a
certificate from the mesh CA (pki/operator.py). The certificate's SPIFFE ID
says who is calling, and nothing else does — not a header, not the body:

    admin      .../ns/minimesh-system/sa/admin    the CLI, the runner, a TUI on a local stack
    viewer     .../ns/minimesh-system/sa/viewer   a TUI on a compose stack: reads only
    workload   .../ns/default/sa/<service>        a sidecar or the gateway: its own service only
    anonymous  no certificate                     /healthz, and /v1/sign with a join token

Each route names the roles it admits (`RULES`, a table — read it top to
bottom to see the whole API's policy). The middleware answers 401 to a
caller without a certificate and 403 to one whose role the route does not
admit, *before* the handler runs, so an unauthenticated body is never read,
parsed or validated. What a role admits goes one step further in a few
handlers, which know what the body names: a workload may register,
heartbeat, ACK and deregister only instances of its own service, and report
telemetry only as itself (`owns`).

A body is refused with 413 when its Content-Length says it is over
MAX_BODY, before a byte of it is read; aiohttp's client_max_size stops a
chunked one at the same size while it is read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum

from aiohttp import web

from minimesh.pki.operator import ADMIN, VIEWER
from minimesh.pki.spiffe import in_trust_domain, service_of
from minimesh.pki.svid import identity_of_der

log = logging.getLogger("minimesh.control")

MAX_BODY = 1024 * 1024  # 1 MiB: the largest config apply of every lesson together is ~40 KiB


class Role(Enum):
    ADMIN = "admin"
    VIEWER = "viewer"
    WORKLOAD = "workload"
    ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Caller:
    role: Role
    identity: str | None = None
    service: str | None = None  # for a workload: the service its certificate names

    def describe(self) -> str:
        return self.identity or "a client without a certificate"


def caller_of_identity(identity: str | None) -> Caller:
    """Who a verified SPIFFE ID (or None: no certificate) is, to the control plane."""
    if identity is None:
        return Caller(Role.ANONYMOUS)
    if identity == ADMIN:
        return Caller(Role.ADMIN, identity)
    if identity == VIEWER:
        return Caller(Role.VIEWER, identity)
    service = service_of(identity)
    if service is not None and in_trust_domain(identity):
        return Caller(Role.WORKLOAD, identity, service)
    return Caller(Role.ANONYMOUS, identity)  # a valid chain naming nothing we know: no rights


def caller_of(request: web.Request) -> Caller:
    """The caller the TLS handshake proved (the server verified the chain against the mesh CA)."""
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    return caller_of_identity(identity_of_der(der))


A, V, W, ANY = Role.ADMIN, Role.VIEWER, Role.WORKLOAD, Role.ANONYMOUS
READERS = frozenset({A, V})

# (method, route path) -> the roles admitted. A route missing here admits no one.
RULES: dict[tuple[str, str], frozenset[Role]] = {
    ("GET", "/healthz"): frozenset({A, V, W, ANY}),
    # The one door for a caller with no certificate yet: the join token is checked inside
    # (a workload renewing shows its certificate instead; the admin, too, needs a token).
    ("POST", "/v1/sign"): frozenset({A, W, ANY}),
    # A workload for itself (checked against the body in api.py); the admin for anyone.
    ("POST", "/v1/register"): frozenset({A, W}),
    ("DELETE", "/v1/instances/{instance}"): frozenset({A, W}),
    ("GET", "/v1/watch"): frozenset({A, W}),
    ("POST", "/v1/ack"): frozenset({A, W}),
    ("POST", "/v1/telemetry"): frozenset({A, W}),
    # Changing the mesh: the admin only.
    ("POST", "/v1/config"): frozenset({A}),
    ("DELETE", "/v1/config/{kind}/{name}"): frozenset({A}),
    # Reading it: the admin and viewers.
    ("GET", "/v1/instances"): READERS,
    ("GET", "/v1/config"): READERS,
    ("GET", "/v1/status"): READERS,
    ("GET", "/v1/rollout"): READERS,
    ("GET", "/v1/stat"): READERS,
    ("GET", "/v1/tap"): READERS,
    ("GET", "/v1/traces"): READERS,
    ("GET", "/v1/traces/{trace_id}"): READERS,
}


def admitted(method: str, route: str | None, caller: Caller, rules=RULES) -> bool:
    return route is not None and caller.role in rules.get((method, route), frozenset())


def refusal(method: str, route: str | None, caller: Caller, rules=RULES) -> tuple[int, str] | None:
    """None if `caller` may call the route; else (401 or 403, one line saying why)."""
    if route is None or admitted(method, route, caller, rules):
        return None  # an unknown route is 404 (or 405) at the router, for everyone
    if caller.role is Role.ANONYMOUS:
        if caller.identity:
            return 403, f"{caller.identity} is not an identity of this control plane"
        return 401, ("the control plane needs a client certificate from the mesh CA "
                     "(the CLI finds the admin's in MINIMESH_HOME/credentials)")
    return 403, f"{caller.identity} may not {method} {route}"


def owns(caller: Caller, service: str | None) -> bool:
    """May `caller` act for `service`? The admin for every service; a workload for its own."""
    return caller.role is Role.ADMIN or (caller.role is Role.WORKLOAD and caller.service == service)


CALLER = "minimesh.caller"


def access_middleware(rules=RULES, max_body: int = MAX_BODY):
    """The middleware: the caller's certificate, then the route's rule, then the body's size."""

    @web.middleware
    async def access(request: web.Request, handler):
        caller = caller_of(request)
        request[CALLER] = caller
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else None
        refused = refusal(request.method, route, caller, rules)
        if refused is not None:
            status, message = refused
            log.info("refused %s %s from %s (%s): %d", request.method, request.path, caller.describe(),
                     request.remote, status)
            return web.json_response({"error": message}, status=status)
        if request.content_length is not None and request.content_length > max_body:
            return web.json_response({"error": f"request body of {request.content_length} bytes is over the "
                                               f"limit of {max_body} bytes"}, status=413)
        return await handler(request)

    return access

