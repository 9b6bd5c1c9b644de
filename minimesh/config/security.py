"""PeerAuthentication: whether a workload's inbound side demands mutual TLS.

PeerAuthentication says whether a workload's inbound side demands mutual TLS
(STRICT), takes both mTLS and plaintext (PERMISSIVE) or only plaintext
(DISABLE). UNSET inherits: a workload-selecting policy beats a
namespace-wide one, and with none at all Istio behaves as PERMISSIVE.
`parse_selector` is shared by the policy kinds (authorization.py,
requestauthentication.py).

`portLevelMtls` sets the mode for one *workload* port (the container's
port, not the Service's), and Istio allows it only beside a selector. A
minimesh workload serves one port — 8080, where every app listens in its
container (compose, and on Kubernetes) — so a setting for 8080 is the mode
of that workload, and is folded into it here; a setting for any other port
would govern traffic that cannot exist here and is refused, saying so.
"""

from dataclasses import dataclass

from .fields import At, check_fields, enum, labels, mapping
from .resource import Labels, Resource

MTLS_MODES = ("STRICT", "PERMISSIVE", "DISABLE", "UNSET")
WORKLOAD_PORT = 8080  # the port every minimesh app serves in its container


@dataclass(frozen=True, kw_only=True)
class PeerAuthentication(Resource):
    kind = "PeerAuthentication"
    selector: Labels | None = None  # None: the whole namespace
    mtls_mode: str = "UNSET"  # on the workload's one port: spec.mtls.mode, or portLevelMtls[8080] over it


def parse_selector(spec: dict, at: At) -> Labels | None:
    if "selector" not in spec:
        return None
    block = mapping(spec["selector"], at / "selector")
    check_fields(block, at / "selector", ("matchLabels",))
    return Labels(labels(block.get("matchLabels"), at / "selector" / "matchLabels"))


def parse_peer_authentication(spec: dict, at: At, **meta) -> PeerAuthentication:
    check_fields(spec, at, ("selector", "mtls", "portLevelMtls"))
    mode = "UNSET"
    if "mtls" in spec:
        mtls = mapping(spec["mtls"], at / "mtls")
        check_fields(mtls, at / "mtls", ("mode",))
        if "mode" in mtls:
            mode = enum(mtls["mode"], at / "mtls" / "mode", MTLS_MODES)
    selector = parse_selector(spec, at)
    if "portLevelMtls" in spec:
        if selector is None:
            raise (at / "portLevelMtls").error("portLevelMtls needs a selector beside it; Istio refuses it on a "
                                               "namespace- or mesh-wide policy")
        port_mode = _port_level_mode(spec["portLevelMtls"], at / "portLevelMtls")
        mode = port_mode if port_mode != "UNSET" else mode
    return PeerAuthentication(selector=selector, mtls_mode=mode, **meta)


def _port_level_mode(value, at: At) -> str:
    """The mode portLevelMtls sets for WORKLOAD_PORT ("UNSET": inherit); any other port is refused."""
    if not isinstance(value, dict):
        raise at.error("expected a map of workload port to {mode: ...}")
    mode = "UNSET"
    for key, setting in value.items():
        where = at / str(key)
        port = int(key) if isinstance(key, int) or (isinstance(key, str) and key.isdigit()) else None
        if port is None or isinstance(key, bool) or not 1 <= port <= 65535:
            raise where.error(f"{key!r} is not a port number")
        if port != WORKLOAD_PORT:
            raise where.error(f"port {port}: Istio would set the mTLS mode for traffic to that workload port only; "
                              f"a minimesh workload serves one port, {WORKLOAD_PORT}, so there is no such traffic "
                              f"here (use {WORKLOAD_PORT}, or spec.mtls.mode)")
        block = mapping(setting, where)
        check_fields(block, where, ("mode",))
        mode = enum(block.get("mode", "UNSET"), where / "mode", MTLS_MODES)
    return mode
