"""One request in plain words: what the tap view shows when a line is selected.

A tap line says who called whom and what came back; this module adds the
why, from what the sidecar reported: the route that matched, the subset and
endpoint the balancer picked, each attempt and the reason it was retried,
every response flag as the sentence minimesh/flags.py keeps for it, who
the peer was — the SPIFFE ID its certificate proved, or nobody proved on
plaintext — and which AuthorizationPolicy and rule let the request in or
kept it out.

Pure: it takes a tap event (and the request's trace, when fetched, for the
attempts) and returns lines of (label, text).
"""

from __future__ import annotations

from minimesh.flags import FLAGS
from tui.model import Attempt, TapEvent, Trace

REPORTERS = {
    "gateway": "the gateway, as it sent the request into the mesh",
    "outbound": "the caller's sidecar (outbound), as it sent the request on",
    "inbound": "the callee's sidecar (inbound), as it handed the request to its app",
}


def attempts_of(event: TapEvent, trace: Trace | None) -> tuple[Attempt, ...]:
    """The attempts: carried by the tap line, or else read from the trace's attempt spans."""
    if event.attempt_list:
        return event.attempt_list
    if trace is None:
        return ()
    mine = [s for s in trace.spans if s.kind == "attempt" and s.service == event.source.service]
    if not mine:
        return ()
    first = min(s.start for s in mine)
    return tuple(Attempt(n, None, s.peer.instance, s.status, s.error, (s.start - first) * 1000, s.duration_ms)
                 for n, s in enumerate(sorted(mine, key=lambda s: s.start), 1))


def why_retried(attempt: Attempt) -> str:
    """Why the retry policy tried again after this attempt (Istio's retryOn names)."""
    error = attempt.error or ""
    code = error.split(":", 1)[0].strip()
    if code == "UT":
        return "per-try timeout: no answer in time (retryOn: per-try timeout is always retried)"
    if code in ("UF", "UH"):
        return "connect-failure: could not reach the instance"
    if code in ("UC", "URR"):
        return "reset: the connection closed before an answer (retryOn: reset)"
    if attempt.status == 503:
        return "answered 503 (retryOn: 5xx, gateway-error or the code 503; never by Istio's default)"
    if isinstance(attempt.status, int) and attempt.status >= 500:
        return f"answered {attempt.status} (retryOn: 5xx / gateway-error)"
    return error or "retried"


def peer_identity(event: TapEvent) -> str:
    """Who the other end was, as far as a certificate proves it — never from a header."""
    other = event.source if event.reporter == "inbound" else event.destination
    name = other.service or "?"
    if event.external:
        return f"{event.authority or name} — outside the mesh (passed through, ALLOW_ANY)"
    if event.identity:
        return f"{event.identity} — proved by its certificate (mutual TLS)"
    if event.mtls:
        return "mutual TLS — the sidecar verified the certificate, but this line does not carry its SPIFFE ID"
    if event.reporter == "inbound":
        return "nobody proved — plaintext, no certificate (a client outside the mesh, or mTLS off)"
    return f"{other.label()} — plaintext: the instance the balancer picked, not proved by a certificate"


def explain_outlier(event: TapEvent) -> list[tuple[str, str]]:
    """An ejection or return: who decided it, about whom, why, and for how long."""
    caller, upstream = event.source, event.destination
    who = f"{caller.instance or caller.label()}'s sidecar"
    target = f"{upstream.instance or '?'} ({upstream.label()}" + (f" at {event.endpoint})" if event.endpoint else ")")
    if event.event == "ejected":
        lines = [("event", f"{who} ejected {target} from its load balancer"),
                 ("why", f"{event.reason}: that many failed answers in a row (outlierDetection)"),
                 ("for", f"{event.note}; baseEjectionTime × the times it was ejected — "
                         "the sweep every interval lets it back when the time is up")]
    else:
        lines = [("event", f"{who} let {target} back into its load balancer"),
                 ("after", event.note or "")]
    lines.append(("decided by", "the caller alone: each sidecar counts only the answers it got "
                                "(no global view; `minimesh status` lists who ejected whom)"))
    return lines


def explain(event: TapEvent, trace: Trace | None = None) -> list[tuple[str, str]]:
    if event.kind == "outlier":
        return explain_outlier(event)
    lines = [
        ("request", f"{event.method or '?'} {event.authority or ''}{event.path or ''}".strip()),
        ("answer", f"{event.status}  in {event.duration_ms:.1f} ms"),
        ("seen by", REPORTERS.get(event.reporter, event.reporter)),
        ("from → to", f"{event.source.label()} ({event.source.instance or '?'}) → "
                      f"{event.destination.label()} ({event.destination.instance or '?'})"),
    ]
    if event.reporter != "inbound":
        lines.append(("route", f"VirtualService route {event.route!r}" if event.route
                      else "the default route (no VirtualService matched: every instance, Istio's defaults)"))
        if event.subset == "?":
            subset = f"not in the tap line; the answer came from version {event.destination.version or '?'}"
        elif event.subset:
            subset = f"subset {event.subset!r} (DestinationRule)"
        else:
            subset = "no subset: any version of the service"
        lines.append(("subset", subset))
        lines.append(("endpoint", f"{event.destination.instance or '?'}" + (f" at {event.endpoint}"
                                                                            if event.endpoint else "")))
        attempts = attempts_of(event, trace)
        if attempts:
            for a in attempts:
                where = a.instance or a.endpoint or "?"
                text = f"#{a.number} → {where}: {a.status if a.status is not None else a.error}  " \
                       f"{a.duration_ms:.1f} ms at +{a.start_ms:.0f} ms"
                if a.number < len(attempts):
                    text += f"  — retried: {why_retried(a)}"
                lines.append(("attempt", text))
        elif event.attempts:
            retried = f", {event.retries} retried (select again once its trace is in)" if event.retries else ""
            lines.append(("attempts", f"{event.attempts} attempt(s){retried}"))
    for code in event.flags:
        flag = FLAGS.get(code)
        lines.append((f"flag {code}", f"{flag.meaning} Usual cause: {flag.cause}" if flag else "(unknown flag)"))
    if not event.flags:
        lines.append(("flags", "none: the answer came from the app, untouched by the mesh"))
    lines.append(("peer", peer_identity(event)))
    if event.authz:
        lines.append(("policy", event.authz))
    if event.trace_id:
        lines.append(("trace", f"{event.trace_id}  (press w for its waterfall)"))
    return lines
