"""`minimesh stat`: Linkerd's table, one row per service and version.

    NAME      VERSION  MESHED  SUCCESS  RPS    LATENCY_P50  LATENCY_P95  LATENCY_P99  EFFECTIVE  ACTUAL  RETRIES

SUCCESS, RPS and latencies are measured where Linkerd measures them: at the
service's own inbound side. EFFECTIVE is the success its callers saw after
retries; ACTUAL the success of every attempt, before retries hid the
failures (Linkerd's `routes -o wide` columns). Below the table, when an
AuthorizationPolicy denied anything in the window: the denials per edge,
counted where they were enforced.
"""

from __future__ import annotations

COLUMNS = ("NAME", "VERSION", "MESHED", "SUCCESS", "RPS", "LATENCY_P50", "LATENCY_P95", "LATENCY_P99",
           "EFFECTIVE", "ACTUAL", "RETRIES")


def percent(value) -> str:
    return "-" if value is None else f"{value * 100:.2f}%"


def millis(value) -> str:
    return "-" if value is None else (f"{value:.0f}ms" if value >= 10 else f"{value:.1f}ms")


def rows(doc: dict) -> list[tuple[str, ...]]:
    out = []
    for w in doc.get("workloads", []):
        lat = w.get("latency_ms") or {}
        meshed = w.get("meshed") or 0
        out.append((str(w["service"]), str(w.get("version") or "-"), f"{meshed}/{meshed}",
                    percent(w.get("success_rate")), f"{w.get('rps', 0):.2f}",
                    millis(lat.get("p50")), millis(lat.get("p95")), millis(lat.get("p99")),
                    percent(w.get("effective_success_rate")), percent(w.get("actual_success_rate")),
                    str(w.get("retries", 0))))
    return out


def format_stat(doc: dict) -> str:
    table = [COLUMNS] + rows(doc)
    if len(table) == 1:
        return f"no traffic in the last {doc.get('window_s', 60):g} s"
    widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS))]
    text = "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in table)
    denials = format_denials(doc)
    return text + ("\n\n" + denials if denials else "")


def format_denials(doc: dict) -> str:
    """Requests AuthorizationPolicy denied, per edge (where the policy was enforced), or "" when none were."""
    found = [d for d in doc.get("denials", []) if d.get("denied")]
    if not found:
        return ""

    def name(side: dict) -> str:
        service = side.get("service") or "unknown"
        return f"{service} {side['version']}" if side.get("version") else service
    table = [("DENIED (403 RBAC)", "SOURCE", "DESTINATION")] + \
        [(str(d["denied"]), name(d["source"]), name(d["destination"])) for d in found]
    widths = [max(len(r[i]) for r in table) for i in range(3)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in table)
