"""PeerAuthentication decisions (pure): which mode applies, and what a connection's first byte gets."""

import pytest

from minimesh.config import parse_resource
from minimesh.proxy.inbound.peer_auth import Action, effective_mode, inbound_action
from minimesh.proxy.outbound.secure_naming import Transport, upstream_security


def pa(name, mode, app=None):
    spec = {"mtls": {"mode": mode}}
    if app:
        spec["selector"] = {"matchLabels": {"app": app}}
    return parse_resource({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
                           "metadata": {"name": name}, "spec": spec}, source="test")


@pytest.mark.parametrize("policies,labels,mode", [
    ([], {"app": "web"}, "PERMISSIVE"),  # Istio's default
    ([pa("mesh", "STRICT")], {"app": "web"}, "STRICT"),
    ([pa("mesh", "STRICT"), pa("web", "PERMISSIVE", "web")], {"app": "web"}, "PERMISSIVE"),  # workload beats mesh
    ([pa("mesh", "STRICT"), pa("web", "PERMISSIVE", "web")], {"app": "catalog"}, "STRICT"),
    ([pa("mesh", "STRICT"), pa("web", "UNSET", "web")], {"app": "web"}, "STRICT"),  # UNSET inherits
    ([pa("web", "DISABLE", "web")], {"app": "web"}, "DISABLE"),
    ([pa("web", "DISABLE", "web")], {"app": "pricing"}, "PERMISSIVE"),
])
def test_effective_mode(policies, labels, mode):
    assert effective_mode(policies, labels) == mode


@pytest.mark.parametrize("mode,is_tls,have_cert,action", [
    ("STRICT", True, True, Action.MTLS),
    ("STRICT", False, True, Action.REFUSE),
    ("STRICT", True, False, Action.REFUSE),
    ("PERMISSIVE", True, True, Action.MTLS),
    ("PERMISSIVE", False, True, Action.PLAINTEXT),
    ("PERMISSIVE", False, False, Action.PLAINTEXT),
    ("DISABLE", True, True, Action.REFUSE),
    ("DISABLE", False, True, Action.PLAINTEXT),
])
def test_inbound_action(mode, is_tls, have_cert, action):
    assert inbound_action(mode, is_tls, have_cert) is action


CATALOG = "spiffe://cluster.local/ns/default/sa/catalog"


@pytest.mark.parametrize("server_mode,identity,have_cert,transport,expected", [
    ("PERMISSIVE", CATALOG, True, Transport.MTLS, CATALOG),
    ("STRICT", CATALOG, True, Transport.MTLS, CATALOG),
    ("DISABLE", CATALOG, True, Transport.PLAINTEXT, None),
    ("PERMISSIVE", None, True, Transport.PLAINTEXT, None),  # no identity: plaintext, where allowed
    ("DISABLE", None, False, Transport.PLAINTEXT, None),
    ("PERMISSIVE", CATALOG, False, Transport.PLAINTEXT, None),
    # Secure naming: never plaintext where the destination wants mTLS.
    ("STRICT", None, True, Transport.REFUSE, None),
    ("STRICT", None, False, Transport.REFUSE, None),
    ("STRICT", CATALOG, False, Transport.REFUSE, None),
    ("PERMISSIVE", "spiffe://evil.example/ns/default/sa/catalog", True, Transport.REFUSE, None),
])
def test_auto_mtls_and_secure_naming(server_mode, identity, have_cert, transport, expected):
    decision = upstream_security(server_mode, identity, have_cert)
    assert decision.transport is transport
    assert decision.expected_identity == expected
    assert bool(decision.reason) is (transport is Transport.REFUSE)
