"""`minimesh authz check`: would this request be allowed? Answered from the applied config, no traffic sent.

Like `istioctl x authz check`, but for one imagined request: SOURCE calls
DEST with METHOD and PATH (and headers, and a JWT). The request is run
through the very layers the destination's proxy runs — RequestAuthentication
(jwt_authn.py), then AuthorizationPolicy (authz.py) — with a stand-in for the
app at the end, so the answer cannot drift from what the mesh does. The
source's principal is the one its certificate would prove; `plaintext` is a
caller without one.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from types import SimpleNamespace

import click
from multidict import CIMultiDict

from minimesh.config import parse_resource
from minimesh.errors import ConfigError, MeshError, UserError
from minimesh.pki.spiffe import spiffe_id
from minimesh.proxy.inbound.authz import Authorize, Workload
from minimesh.config.gateway import HTTP_PORT
from minimesh.proxy.gateway import GATEWAY_LABELS, POD_PORTS
from minimesh.proxy.inbound.jwks import JwksCache
from minimesh.proxy.inbound.jwt_authn import Authenticate
from minimesh.proxy.message import Journey, Request, text_response

PLAINTEXT = ("plaintext", "-", "none")


@dataclass(frozen=True)
class CheckResult:
    status: int  # 200: reaches the app; 403 RBAC; 401 bad token
    reason: str
    authz: dict | None
    request_principal: str | None

    @property
    def allowed(self) -> bool:
        return self.status == 200


def peer_identity(source: str) -> str | None:
    """'web' -> its SPIFFE ID; a full principal ('cluster.local/ns/x/sa/y') as given; 'plaintext' -> None."""
    if source.lower() in PLAINTEXT:
        return None
    if "/" in source:
        return "spiffe://" + source.removeprefix("spiffe://")
    return spiffe_id(source)


def workload_of(dest: str, version: str) -> tuple[Workload, str]:
    if dest == "gateway":
        return Workload({"app": "gateway", "version": version, **GATEWAY_LABELS}, port=POD_PORTS[HTTP_PORT]), "gateway"
    return Workload({"app": dest, "version": version}), "inbound"


async def check_request(resources, source: str, dest: str, method: str, path: str, headers: dict,
                        token: str | None = None, version: str = "v1", jwks: JwksCache | None = None) -> CheckResult:
    """Run the imagined request through the destination's RequestAuthentication and AuthorizationPolicy."""
    workload, direction = workload_of(dest, version)
    journey = Journey(direction)
    journey.peer_identity = peer_identity(source)
    journey.config = SimpleNamespace(resources=tuple(resources))
    all_headers = CIMultiDict(headers)
    if token:
        all_headers["authorization"] = f"Bearer {token}"
    request = Request(method=method.upper(), path=path, authority=dest, headers=all_headers, journey=journey)

    async def app(_request):
        return text_response(200, "reaches the app")
    stack = Authenticate(Authorize(app, workload), workload, jwks or JwksCache())
    try:
        await stack(request)
    except MeshError as e:
        return CheckResult(e.status, e.reason, journey.authz, _principal(journey))
    reason = journey.authz["reason"] if journey.authz else "allowed: no AuthorizationPolicy applies to " + dest
    return CheckResult(200, reason, journey.authz, _principal(journey))


def _principal(journey: Journey) -> str | None:
    return getattr(journey.request_auth, "principal", None)


def run(client, source: str, dest: str, method: str, path: str, header_pairs: tuple[str, ...],
        jwt_file: str | None, version: str, as_json: bool) -> CheckResult:
    headers = {}
    for pair in header_pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--header {pair!r}: expected NAME=VALUE, e.g. --header x-user=alice")
        headers[key] = value
    token = None
    if jwt_file:
        try:
            with open(jwt_file, encoding="utf-8") as f:
                token = f.read().strip()
        except OSError as e:
            raise UserError(f"--jwt {jwt_file}: cannot read it ({e.strerror})") from e
    answer = client.config(None)
    try:
        resources = [parse_resource(doc, source="<applied config>") for doc in answer.get("resources", [])]
    except ConfigError as e:
        raise UserError(f"the applied config does not load: {e}") from e
    result = asyncio.run(check_request(resources, source, dest, method, path, headers, token, version))
    if as_json:
        click.echo(json.dumps({"allowed": result.allowed, "status": result.status, "reason": result.reason,
                               "authz": result.authz, "request_principal": result.request_principal}, indent=2))
        return result
    who = "plaintext (no principal)" if peer_identity(source) is None else \
        peer_identity(source).removeprefix("spiffe://")
    verdict = {200: "ALLOW", 403: "DENY (403 RBAC: access denied)", 401: "DENY (401: the token is refused)"}
    click.echo(f"{method.upper()} {dest}{path} from {who}"
               + (f", request principal {result.request_principal}" if result.request_principal else ""))
    click.echo(f"  {verdict.get(result.status, str(result.status))}: {result.reason}")
    for key in ("audit", "dry_run"):
        if result.authz and result.authz.get(key):
            click.echo(f"  {key.replace('_', '-')}: {result.authz[key]}")
    return result

