"""PeerAuthentication: whether a workload's inbound side demands mutual TLS.

PeerAuthentication says whether a workload's inbound side demands mutual TLS
(STRICT), takes both mTLS and plaintext (PERMISSIVE) or only plaintext
(DISABLE). UNSET inherits: a workload-selecting policy beats a
namespace-wide one, and with none at all Istio behaves as PERMISSIVE.
`parse_selector` is shared by the policy kinds (authorization.py,
requestauthentication.py).
"""

from dataclasses import dataclass

from .fields import At, check_fields, enum, labels, mapping
from .resource import Labels, Resource

MTLS_MODES = ("STRICT", "PERMISSIVE", "DISABLE", "UNSET")


@dataclass(frozen=True, kw_only=True)
class PeerAuthentication(Resource):
    kind = "PeerAuthentication"
    selector: Labels | None = None  # None: the whole namespace
    mtls_mode: str = "UNSET"


def parse_selector(spec: dict, at: At) -> Labels | None:
    if "selector" not in spec:
        return None
    block = mapping(spec["selector"], at / "selector")
    check_fields(block, at / "selector", ("matchLabels",))
    return Labels(labels(block.get("matchLabels"), at / "selector" / "matchLabels"))


def parse_peer_authentication(spec: dict, at: At, **meta) -> PeerAuthentication:
    check_fields(spec, at, ("selector", "mtls"), {
        "portLevelMtls": "Istio would set the mode for that workload (container) port only, and only with a "
                         "selector; a minimesh workload serves one port, so set spec.mtls.mode instead"})
    mode = "UNSET"
    if "mtls" in spec:
        mtls = mapping(spec["mtls"], at / "mtls")
        check_fields(mtls, at / "mtls", ("mode",))
        if "mode" in mtls:
            mode = enum(mtls["mode"], at / "mtls" / "mode", MTLS_MODES)
    return PeerAuthentication(selector=parse_selector(spec, at), mtls_mode=mode, **meta)
