"""PeerAuthentication decisions (pure): which mode applies, and what a connection's first byte gets."""

import pytest

from minimesh.config import parse_resource
from minimesh.proxy.peer_auth import Action, client_uses_mtls, effective_mode, inbound_action


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


@pytest.mark.parametrize("server_mode,server_identity,have_cert,mtls", [
    ("PERMISSIVE", True, True, True),
    ("STRICT", True, True, True),
    ("DISABLE", True, True, False),
    ("PERMISSIVE", False, True, False),  # an endpoint without identity cannot do mTLS
    ("STRICT", True, False, False),
])
def test_auto_mtls(server_mode, server_identity, have_cert, mtls):
    assert client_uses_mtls(server_mode, server_identity, have_cert) is mtls
