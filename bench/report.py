"""From raw measurements to what a reader wants: differences, ratios, goals, and a table.

Absolute times on a shared 2-core box move by tens of percent from run to
run; differences and ratios taken within one run move much less, because
every configuration suffers the same machine. So each row carries its
latency *added over direct* and its throughput *as a fraction of direct and
of the HAProxy pair*, measured minutes apart in the same run.
"""

from __future__ import annotations

import statistics

# The first version's goals for a minimesh sidecar pair (issue 8).
GOALS = {
    "added_p50_ms": ("<=", 1.0),
    "added_p99_ms": ("<=", 2.5),
    "throughput_vs_haproxy": (">=", 0.2),
    "cpu_s_per_1k_per_sidecar": ("<=", 0.3),
    "peak_rss_mb_per_sidecar": ("<=", 60.0),
}


def _ratio(a, b):
    return round(a / b, 3) if a is not None and b else None


def _diff(a, b):
    return round(a - b, 3) if a is not None and b is not None else None


def derive(rows: list[dict]) -> None:
    """Add `added` latencies and throughput `ratios` to every measured row, in place."""
    by_name = {r["name"]: r for r in rows if r.get("measured")}
    direct, haproxy = by_name.get("direct"), by_name.get("haproxy")
    for row in by_name.values():
        lat, rps = row["latency"], row["throughput"]["rps"]
        row["added"] = {
            "p50_ms": _diff(lat["p50_ms"], direct and direct["latency"]["p50_ms"]),
            "p99_ms": _diff(lat["p99_ms"], direct and direct["latency"]["p99_ms"]),
        }
        row["ratios"] = {
            "throughput_vs_direct": _ratio(rps, direct and direct["throughput"]["rps"]),
            "throughput_vs_haproxy": _ratio(rps, haproxy and haproxy["throughput"]["rps"]),
        }


def worst_sidecar(row: dict, key: str):
    values = [p[key] for p in row["proxies"] if p.get(key) is not None]
    return max(values) if values else None


def judge(rows: list[dict]) -> list[dict]:
    """Every minimesh row against every goal: value, goal, met (None when it could not be measured)."""
    verdicts = []
    for row in rows:
        if row["kind"] != "minimesh" or not row.get("measured"):
            continue
        cpu = [worst_sidecar(row, "cpu_s_per_1k_at_rate"), worst_sidecar(row, "cpu_s_per_1k_flat_out")]
        values = {
            "added_p50_ms": row["added"]["p50_ms"],
            "added_p99_ms": row["added"]["p99_ms"],
            "throughput_vs_haproxy": row["ratios"]["throughput_vs_haproxy"],
            # The worse sidecar, at the worse of the two loads: a goal met only on a good day is not met.
            "cpu_s_per_1k_per_sidecar": max(c for c in cpu if c is not None) if any(c is not None for c in cpu) else None,
            "peak_rss_mb_per_sidecar": worst_sidecar(row, "peak_rss_mb"),
        }
        for metric, (op, goal) in GOALS.items():
            value = values[metric]
            met = None if value is None else (value <= goal if op == "<=" else value >= goal)
            verdicts.append({"configuration": row["name"], "metric": metric, "value": value,
                             "goal": f"{op} {goal}", "met": met})
    return verdicts


def _fmt(value, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def _pair(row: dict, key: str, spec: str) -> str:
    by_role = {p["role"]: p[key] for p in row.get("proxies", [])}
    if not by_role:
        return "-"
    return "/".join(_fmt(by_role.get(role), spec) for role in ("outbound", "inbound"))


def table(rows: list[dict], verdicts: list[dict]) -> str:
    head = ("configuration", "max rps", "×direct", "×haproxy", "p50 ms", "p99 ms", "+p50", "+p99",
            "CPU-s/1k @rate", "CPU-s/1k flat", "peak RSS MB", "control CPU-s/1k flat")
    lines = [head]
    for row in rows:
        if not row.get("measured"):
            lines.append((row["name"], f"not measured: {row['skipped']}"))
            continue
        lat = row["latency"]
        lines.append((
            row["name"], _fmt(row["throughput"]["rps"], ".0f"),
            _fmt(row["ratios"]["throughput_vs_direct"], ".2f"), _fmt(row["ratios"]["throughput_vs_haproxy"], ".2f"),
            _fmt(lat["p50_ms"]), _fmt(lat["p99_ms"]), _fmt(row["added"]["p50_ms"]), _fmt(row["added"]["p99_ms"]),
            _pair(row, "cpu_s_per_1k_at_rate", ".3f"), _pair(row, "cpu_s_per_1k_flat_out", ".3f"),
            _pair(row, "peak_rss_mb", ".1f"),
            _fmt(next((h["cpu_s_per_1k_flat_out"] for h in row.get("helpers", []) if h["role"] == "control"), None),
                 ".3f"),
        ))
    widths = [max(len(line[i]) for line in lines if len(line) > i and len(line) == len(head))
              for i in range(len(head))]
    out = []
    for line in lines:
        if len(line) != len(head):
            out.append(f"{line[0]:<{widths[0]}}  {line[1]}")
        else:
            out.append("  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(line, widths))))
    out.append("(proxy columns: outbound/inbound; +p50/+p99: added over direct, ms)")
    cost = policy_cost(rows)
    if cost:
        out.append(cost)
    if verdicts:
        out.append("")
        out.append("goals (first version, per sidecar pair):")
        for v in verdicts:
            mark = {True: "met", False: "MISSED", None: "n/a"}[v["met"]]
            out.append(f"  {v['configuration']:<28} {v['metric']:<26} {_fmt(v['value'], '.3f'):>8}  "
                       f"goal {v['goal']:<8} {mark}")
    return "\n".join(out)


def policy_cost(rows: list[dict]) -> str | None:
    """What the AuthorizationPolicy layer costs: minimesh-authz against the plain pair, in the same run."""
    by_name = {r["name"]: r for r in rows if r.get("measured")}
    plain, authz = by_name.get("minimesh"), by_name.get("minimesh-authz")
    if not plain or not authz:
        return None
    ratio = _ratio(authz["throughput"]["rps"], plain["throughput"]["rps"])
    # Rounds alternate the two, so round i of each ran under the same weather: pair them.
    paired = [b / a for a, b in zip(plain["throughput"]["per_round_rps"], authz["throughput"]["per_round_rps"]) if a]
    if paired:
        ratio = f"{ratio} (median of paired rounds x{statistics.median(paired):.3f})"

    def inbound_share(row):  # inbound CPU over outbound CPU: the machine's mood cancels out
        cpu = {p["role"]: p["cpu_s_per_1k_flat_out"] for p in row["proxies"]}
        return cpu["inbound"] / cpu["outbound"] if cpu.get("inbound") and cpu.get("outbound") else None
    a, b = inbound_share(plain), inbound_share(authz)
    cpu = f", inbound CPU per request {100 * (b / a - 1):+.1f}% (relative to its outbound)" if a and b else ""
    return f"AuthorizationPolicy (10 policies x 5 rules): throughput x{ratio} of the plain pair{cpu}"


LATE_SEND_LIMIT_MS = 2.0  # past this the client, not the proxy, decides the tail


def noise_warnings(result: dict) -> list[str]:
    """Say so when the machine was too busy for the tail figures to mean much."""
    out = []
    m = result["machine"]
    busiest = max(m["loadavg_at_start"][0], m["loadavg_at_end"][0])
    if busiest > m["cores"]:
        out.append(f"warning: load average {busiest:.1f} on {m['cores']} cores — other work shared the machine")
    late = [(r["name"], r["latency"]["late_sends_ms_p99"]) for r in result["configurations"] if r.get("measured")]
    slow = [f"{name} {ms:.1f} ms" for name, ms in late if ms is not None and ms > LATE_SEND_LIMIT_MS]
    if slow:
        out.append("warning: the load generator itself sent late (p99: " + ", ".join(slow) +
                   "); p99 figures include that lag — compare p50s and ratios, rerun on a quiet machine")
    return out
