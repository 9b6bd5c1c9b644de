"""PeerAuthentication in the data plane: which mTLS mode is in force, and what it means per connection.

Istio's rules, which minimesh follows:

- a policy with `selector.matchLabels` applies to the workloads of its
  namespace whose labels match; one without a selector applies to its
  namespace — and, in the root namespace `istio-system`, to the whole mesh;
- the workload's own policy beats its namespace's, which beats the
  mesh-wide one; `UNSET` inherits;
- with no policy at all the mode is PERMISSIVE, and clients send mTLS to
  any endpoint that has an identity ("auto mTLS"; the client's side of it,
  with secure naming, is secure_naming.py).

What the inbound listener does with a new connection, by its first byte (a
TLS connection starts with 0x16, a handshake record; HTTP with a letter):

    mode         TLS first byte          anything else
    STRICT       mTLS handshake          refuse (close)
    PERMISSIVE   mTLS handshake          plaintext HTTP
    DISABLE      refuse (close)          plaintext HTTP

A sidecar with no certificate yet (or none at all: it has no join token)
cannot complete a handshake, so there TLS is refused, and STRICT refuses
everything.
"""

from __future__ import annotations

from minimesh.config import DEFAULT_NAMESPACE, PeerAuthentication
from minimesh.config.resource import ROOT_NAMESPACE
from minimesh.proxy.transport.sniffing import Action

DEFAULT_MODE = "PERMISSIVE"


_INBOUND = {  # (mode, is_tls) -> action
    ("STRICT", True): Action.MTLS,
    ("STRICT", False): Action.REFUSE,
    ("PERMISSIVE", True): Action.MTLS,
    ("PERMISSIVE", False): Action.PLAINTEXT,
    ("DISABLE", True): Action.REFUSE,
    ("DISABLE", False): Action.PLAINTEXT,
}


def inbound_action(mode: str, is_tls: bool, have_certificate: bool) -> Action:
    action = _INBOUND[(mode, is_tls)]
    if action is Action.MTLS and not have_certificate:
        return Action.REFUSE
    return action


def _selects(policy: PeerAuthentication, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in dict(policy.selector).items())


def effective_mode(resources, labels: dict, namespace: str = DEFAULT_NAMESPACE) -> str:
    """The mTLS mode in force for a workload with `labels` in `namespace`, from the snapshot's resources."""
    policies = sorted((r for r in resources if isinstance(r, PeerAuthentication) and r.mtls_mode != "UNSET"),
                      key=lambda p: p.name)
    workload = next((p.mtls_mode for p in policies
                     if p.namespace == namespace and p.selector is not None and _selects(p, labels)), None)
    here = next((p.mtls_mode for p in policies if p.namespace == namespace and p.selector is None), None)
    mesh = next((p.mtls_mode for p in policies if p.namespace == ROOT_NAMESPACE and p.selector is None), None)
    return workload or here or mesh or DEFAULT_MODE

