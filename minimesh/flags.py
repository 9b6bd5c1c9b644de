"""Response flags: the short codes in access logs, tap and the TUI, in plain English.

Envoy marks each request whose answer the proxy had a hand in with one or
more flags (`%RESPONSE_FLAGS%`); minimesh uses the same codes, so what a
learner reads here carries over to Istio's logs. This table is the one place
that says what each flag means and what usually causes it; `minimesh explain
FLAG` prints an entry and the TUI shows the same text.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Flag:
    code: str
    name: str  # Envoy's long name
    meaning: str  # what happened, in one sentence
    cause: str  # what usually makes it happen, and where to look
    status: int | None = None  # the status the mesh answers with, when it answers itself


FLAGS: dict[str, Flag] = {f.code: f for f in (
    Flag("NR", "NoRouteFound", "No route matched the request, so the mesh answered 404 itself.",
         "A VirtualService whose http[].match covers other paths or headers, or a Host that names no "
         "mesh service at a gateway without a default.", 404),
    Flag("UH", "NoHealthyUpstream", "The destination had no endpoint to send to, so the mesh answered 503.",
         "Every instance is down, ejected by outlier detection, or the DestinationRule subset's labels "
         "match no instance (check `minimesh status` and the subset labels).", 503),
    Flag("UF", "UpstreamConnectionFailure", "The proxy could not open a connection to the upstream instance.",
         "The app is not listening (crashed, still starting, wrong port) or its sidecar is gone.", 503),
    Flag("UC", "UpstreamConnectionTermination", "The upstream closed the connection before it answered.",
         "The app crashed or restarted mid-request, or closed a kept-alive connection we were reusing.", 503),
    Flag("UT", "UpstreamRequestTimeout", "The upstream took longer than the route's timeout (or perTryTimeout).",
         "A slow instance or dependency (look at the trace), or a timeout set too tight in the VirtualService.",
         504),
    Flag("URX", "UpstreamRetryLimitExceeded", "Every retry was used up and the last answer was still a failure.",
         "The upstream fails more often than `retries.attempts` can hide; raise attempts, fix the upstream, or "
         "look at which instance fails (`minimesh tap`). On an inbound line with UF: the app refused the "
         "connection three times (Istio's inbound retry), so it is down, not just restarting."),
    Flag("UO", "UpstreamOverflow", "The circuit breaker refused the request: too many pending or retried requests.",
         "connectionPool limits in the DestinationRule (http1MaxPendingRequests, maxRetries) reached under load.",
         503),
    Flag("URR", "UpstreamRemoteReset", "The upstream reset the stream.", "An app or its proxy aborted the request."),
    Flag("LR", "LocalReset", "The proxy itself reset the connection.", "The proxy was shutting down or drained."),
    Flag("DPE", "DownstreamProtocolError", "The request was not valid HTTP, or its headers were too large.",
         "A broken client, or headers over 60 KiB or 100 fields (answered 431).", 400),
    Flag("UPE", "UpstreamProtocolError", "The upstream's answer was not valid HTTP, so the mesh answered 502.",
         "An app that writes a broken response, or response headers over 60 KiB or 100 fields.", 502),
    Flag("LD", "LoopDetected", "The request would have come back into the same sidecar, so it answered 508.",
         "An app calling its own sidecar's listener address, or a route that leads back to where it "
         "started (minimesh's own flag; Envoy has none).", 508),
    Flag("BH", "BlackHoleCluster", "The sidecar refused a request for a host outside its registry (502).",
         "A Sidecar with outboundTrafficPolicy REGISTRY_ONLY, and no ServiceEntry for the host (or the "
         "Sidecar's egress hosts leave it out); Istio answers 502 from its BlackHoleCluster "
         "(minimesh's own flag; Envoy logs none).", 502),
    Flag("IE", "InternalError", "The proxy hit an error it did not expect and answered 500 instead.",
         "A minimesh bug, or the machine ran out of something (disk, file descriptors): "
         "the sidecar's log has a line naming it (minimesh's own flag).", 500),
    Flag("DC", "DownstreamConnectionTermination", "The client hung up before the answer was sent.",
         "The caller gave up (its own timeout, a user pressing stop); usually seen with slow upstreams.", 502),
    Flag("NC", "NoClusterFound", "The route's destination names a service or subset the mesh does not know.",
         "A VirtualService pointing at a host or subset with no DestinationRule entry or instances.", 503),
    Flag("RBAC", "RbacAccessDenied", "An AuthorizationPolicy denied the request (403).",
         "A DENY rule matched, or an ALLOW policy exists and no rule allows this caller and path.", 403),
    Flag("UAEX", "UnauthorizedExternalService", "An external authorization service denied the request.",
         "Not used by minimesh; listed because Istio logs show it.", 403),
    Flag("FI", "FaultInjected", "The VirtualService's fault.abort answered instead of the upstream.",
         "A `fault.abort` block on the route: this failure was injected on purpose."),
    Flag("DI", "DelayInjected", "The VirtualService's fault.delay held the request before sending it on.",
         "A `fault.delay` block on the route: this latency was injected on purpose."),
    Flag("RL", "RateLimited", "A rate limit refused the request (429).", "Not used by minimesh yet.", 429),
    Flag("UMSDR", "UpstreamMaxStreamDurationReached", "The upstream stream ran past its maximum duration.",
         "Not used by minimesh; listed because Istio logs show it."),
)}


def explain(code: str) -> Flag:
    """The entry for one flag (case-insensitive); KeyError when minimesh does not know it."""
    return FLAGS[code.strip().upper()]


def split_flags(flags) -> list[str]:
    """'URX,UF' (or '-', or a list) as a list of codes."""
    if isinstance(flags, (list, tuple)):
        return list(flags)
    return [] if flags in (None, "", "-") else [f for f in flags.split(",") if f]
