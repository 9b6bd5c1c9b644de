"""`minimesh trace`: a trace as a waterfall in the terminal.

Each span is one row, indented under its parent, with a bar from when it
started to when it ended on a shared time axis — the picture Jaeger and
Zipkin draw. Work done one call after another shows as a staircase of bars;
calls made in parallel as bars stacked at the same offset. A span whose
parent never arrived (an app that dropped the trace headers starts a new
trace instead, so its parent is elsewhere) is drawn as a root.

    gateway ▶ web          GET /api/products   200  ████████████████████  12.4ms
      web ◀ gateway        GET /api/products   200   ██████████████████   11.0ms
        web ▶ catalog      GET /items          200    ████                 2.1ms
"""

from __future__ import annotations

ARROW = {"gateway": "▶", "client": "▶", "attempt": "▶", "server": "◀"}


def label(span: dict) -> str:
    peer = (span.get("peer") or {})
    other = peer.get("service") or "?"
    if span["kind"] == "attempt":
        return f"{span['name']} ▶ {peer.get('instance') or other}"
    return f"{span['service']} {ARROW.get(span['kind'], '▶')} {other}"


def ordered(spans: list[dict]) -> list[tuple[int, dict]]:
    """(depth, span) depth-first, children in start order; spans with unknown parents are roots."""
    ids = {s["span_id"] for s in spans}
    children: dict = {}
    for s in spans:
        children.setdefault(s["parent_id"] if s["parent_id"] in ids else None, []).append(s)
    out: list[tuple[int, dict]] = []
    stack = [(0, s) for s in sorted(children.get(None, []), key=lambda s: s["start"], reverse=True)]
    while stack:
        depth, span = stack.pop()
        out.append((depth, span))
        for child in sorted(children.get(span["span_id"], []), key=lambda s: s["start"], reverse=True):
            stack.append((depth + 1, child))
    return out


def draw(trace: dict, width: int = 120) -> str:
    spans = trace.get("spans") or []
    if not spans:
        return f"trace {trace.get('trace_id')}: no spans"
    start = min(s["start"] for s in spans)
    total_ms = max((s["start"] - start) * 1000 + s["duration_ms"] for s in spans) or 1.0
    rows = [(depth, span, "  " * depth + label(span), span.get("name") or "") for depth, span in ordered(spans)]
    label_w = min(40, max(len(r[2]) for r in rows))
    name_w = min(28, max(len(r[3]) for r in rows))
    bar_w = max(20, width - label_w - name_w - 22)
    head = (f"trace {trace.get('trace_id')}  {total_ms:.1f} ms  {len(spans)} spans  "
            f"services: {', '.join(trace.get('services') or sorted({s['service'] for s in spans}))}")
    axis = " " * (label_w + name_w + 8) + "0 ms".ljust(bar_w // 2) + f"{total_ms / 2:.1f} ms".ljust(bar_w - bar_w // 2) + f"{total_ms:.1f} ms"
    lines = [head, axis]
    for depth, span, text, name in rows:
        offset = (span["start"] - start) * 1000
        first = int(offset / total_ms * bar_w)
        length = max(1, round(span["duration_ms"] / total_ms * bar_w))
        bar = (" " * first + "█" * length)[:bar_w].ljust(bar_w)
        flags = ",".join(span.get("flags") or [])
        status = f"{span['status']}" + (f" {flags}" if flags else "")
        lines.append(f"{text[:label_w].ljust(label_w)}  {name[:name_w].ljust(name_w)}  {status:>4}  "
                     f"|{bar}| {span['duration_ms']:.1f}ms")
    return "\n".join(lines)
