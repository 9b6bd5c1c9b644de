"""Istio's configuration language, the subset minimesh speaks.

`load_manifests` turns YAML into frozen resources (VirtualService,
DestinationRule, ServiceEntry, Sidecar, PeerAuthentication, AuthorizationPolicy, RequestAuthentication), refusing anything
that is not valid Istio or that minimesh cannot honour, with the file, line
and field named. Modules: source.py (YAML with line numbers), fields.py
(typed readers), duration.py, match.py, one module per kind (and
trafficpolicy.py for a DestinationRule's trafficPolicy), load.py (the
entry points), references.py and analyze.py (cross-resource checks, as
`istioctl analyze`).
"""

from .destinationrule import DestinationRule, Subset
from .gateway import Gateway
from .trafficpolicy import (
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_LOAD_BALANCER, LOAD_BALANCERS, ConnectionPool, ConsistentHash, LoadBalancer,
    OutlierDetection, RetryBudget, TcpKeepalive, TrafficPolicy,
)
from .duration import format_duration, parse_duration
from .load import load_file, load_files, load_manifests, parse_resource
from .match import HTTPMatchRequest, StringMatch
from .analyze import Message, analyze
from .references import check_references, unknown_hosts
from .resource import DEFAULT_NAMESPACE, Labels, Resource, short_host
from .authorization import AuthorizationPolicy
from .requestauthentication import JwtRule, RequestAuthentication
from .security import PeerAuthentication
from .serviceentry import ServiceEntry, ServicePort, WorkloadEndpoint
from .sidecar_resource import ROOT_NAMESPACE, EgressHost, Sidecar
from .virtualservice import (
    DEFAULT_RETRY, DEFAULT_RETRY_BACKOFF, Destination, FaultAbort, FaultDelay, HTTPFault, HTTPRetry,
    HTTPMirrorPolicy, HTTPRoute, HTTPRouteDestination, VirtualService,
)

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT", "DEFAULT_LOAD_BALANCER", "DEFAULT_NAMESPACE", "DEFAULT_RETRY",
    "DEFAULT_RETRY_BACKOFF", "LOAD_BALANCERS", "AuthorizationPolicy", "ConnectionPool", "ConsistentHash",
    "Destination", "HTTPMirrorPolicy", "LoadBalancer", "RetryBudget", "TcpKeepalive",
    "DestinationRule", "FaultAbort", "Gateway", "FaultDelay", "HTTPFault", "HTTPMatchRequest", "HTTPRetry", "HTTPRoute",
    "HTTPRouteDestination", "JwtRule", "Labels", "OutlierDetection", "PeerAuthentication",
    "RequestAuthentication", "Resource", "StringMatch", "Subset", "TrafficPolicy", "VirtualService", "Message", "analyze", "check_references",
    "unknown_hosts",
    "format_duration", "load_file", "load_files", "load_manifests", "parse_duration", "parse_resource",
    "short_host", "ServiceEntry", "ServicePort", "WorkloadEndpoint", "ROOT_NAMESPACE", "EgressHost", "Sidecar",
]
