"""The decision cache never changes an answer: with it, the layer decides exactly as a fresh check does."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from minimesh.config import load_manifests
from minimesh.errors import AccessDenied
from minimesh.proxy.inbound.authz import Authorize, Workload, decide, facts_of, policies_for
from minimesh.proxy.inbound.authz_cache import MAX_ENTRIES
from minimesh.proxy.inbound.jwt_authn import RequestAuth
from minimesh.proxy.message import Journey, Request

WORKLOAD = Workload({"app": "payments"}, port=8080)
POLICIES = load_manifests("""\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny}
spec:
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin*"]}}]
  - when: [{key: "request.headers[x-debug]", values: ["on"]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow}
spec:
  rules:
  - from: [{source: {principals: [cluster.local/ns/default/sa/web]}}]
    to: [{operation: {methods: [GET, POST]}}]
  - from: [{source: {remoteIpBlocks: [203.0.113.0/24], notIpBlocks: [10.0.0.0/8]}}]
  - from: [{source: {requestPrincipals: ["https://issuer/*"]}}]
    to: [{operation: {hosts: [payments]}}]
""")
CONFIG = SimpleNamespace(resources=tuple(POLICIES))


def request(method, path, peer, client, forwarded, debug, token_sub, host) -> Request:
    headers = CIMultiDict()
    if forwarded:
        headers["x-forwarded-for"] = forwarded
    if debug:
        headers["x-debug"] = debug
    journey = Journey("inbound")
    journey.config = CONFIG
    journey.peer_identity = f"spiffe://cluster.local/ns/default/sa/{peer}" if peer else None
    if token_sub:
        journey.request_auth = RequestAuth(f"https://issuer/{token_sub}", (), None, {}, {})
    return Request(method, path, host, headers, client=client, journey=journey)


async def layer_says(layer, req) -> bool:
    async def app(_):
        return "app"
    layer.inner = app
    try:
        await layer(req)
        return True
    except AccessDenied:
        return False


requests = st.builds(
    request,
    method=st.sampled_from(["GET", "POST", "DELETE"]),
    path=st.sampled_from(["/pay", "/admin/x", "/a/../admin", "/items?x=1"]),
    peer=st.sampled_from([None, "web", "catalog"]),
    client=st.sampled_from(["127.0.0.1", "10.0.0.5"]),
    forwarded=st.sampled_from([None, "203.0.113.9", "198.51.100.1, 203.0.113.4"]),
    debug=st.sampled_from([None, "on", "off"]),
    token_sub=st.sampled_from([None, "alice"]),
    host=st.sampled_from(["payments", "other"]),
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(requests, min_size=1, max_size=20))
def test_cached_answers_equal_fresh_ones(batch):
    layer = Authorize(None, WORKLOAD)
    fresh = policies_for(POLICIES, WORKLOAD)
    for req in batch:
        allowed = asyncio.run(layer_says(layer, req))
        expected = decide(fresh, facts_of(req, WORKLOAD, req.path.split("?", 1)[0])).allowed
        assert allowed == expected, (req.method, req.path, req.journey.peer_identity, dict(req.headers))


def test_the_cache_is_used_bounded_and_off_for_claims():
    layer = Authorize(None, WORKLOAD)
    for i in range(3):
        asyncio.run(layer_says(layer, request("GET", "/pay", "web", "127.0.0.1", None, None, None, "payments")))
    cache = layer.policies(CONFIG).cache
    assert len(cache.entries) == 1
    for i in range(MAX_ENTRIES + 5):
        asyncio.run(layer_says(layer, request("GET", f"/p{i}", "web", "127.0.0.1", None, None, None, "payments")))
    assert len(cache.entries) <= MAX_ENTRIES
    # A policy reading a JWT claim is always checked in full.
    claims = load_manifests("""\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: claims}
spec:
  rules:
  - when: [{key: "request.auth.claims[group]", values: [admins]}]
""")
    assert not policies_for(claims, WORKLOAD).cache.enabled
