"""Services: one row per service and version — Linkerd's stat columns, plus sync and certificates.

    NAME  VERSION  MESHED  SUCCESS  RPS  P50  P95  P99  RPS (30 s)  mTLS  CONFIG  CERT

SUCCESS, RPS and latencies are over the app's window (`--window`), measured
at each service's inbound side, as `minimesh stat` does; the sparkline is RPS
over the last 5 s, one sample per refresh. CONFIG is the config version the
sidecars ACKed (✓ current, … catching up, ✗ NACK); CERT the shortest time
to expiry among their certificates. Rows are green, amber or red by success.
MESHED says how many instances some caller's outlier detection has ejected
now ("3/3 ⏏1 ejected"), as the control plane last heard from the sidecars.
"""

from __future__ import annotations

from textual.widgets import Static
from textual.containers import Vertical

from tui.feed import expiry, health, millis, padlock, percent, rps, spark
from tui.views.table import LiveTable, cell

COLUMNS = ("NAME", "VERSION", "MESHED", "SUCCESS", "RPS", "P50", "P95", "P99", "RPS TREND", "mTLS", "CONFIG",
           "CERT")


def config_cell(proxies, config_version: int):
    if not proxies:
        return cell("-", "idle")
    if any(p.nacked_version for p in proxies):
        return cell("✗ NACK", "bad")
    acked = [p.acked_config_version for p in proxies]
    if all(v is not None and v >= config_version for v in acked):
        return cell(f"v{config_version} ✓", "good")
    low = min((v for v in acked if v is not None), default=0)
    return cell(f"v{low}→{config_version} …", "warn")


def rows(state, now: float, service_filter: str | None = None) -> list[tuple[str, tuple]]:
    by_key = {(w.service, w.version): w for w in state.stat.workloads}
    proxies = [p for p in (state.status.proxies if state.status else ()) if p.kind == "sidecar"]
    out = []
    for service, version in state.services():
        if service_filter and service_filter not in service:
            continue
        w = by_key.get((service, version))
        mine = [p for p in proxies if (p.service, p.version) == (service, version)]
        meshed = w.meshed if w else len(mine)
        colour = health(w.success if w else None)
        certs = [p.cert_not_after for p in mine if p.cert_not_after]
        lat = w.latency if w else None
        ejected = state.status.ejected_instances(service, version) if state.status else set()
        meshed_cell = (cell(f"{meshed}/{meshed} ⏏{len(ejected)} ejected", "warn") if ejected
                       else cell(f"{meshed}/{meshed}"))
        out.append((f"{service}/{version}", (
            cell(service, colour), cell(version), meshed_cell,
            cell(percent(w.success if w else None), colour, "right"), cell(rps(w.rps if w else 0.0), None, "right"),
            cell(millis(lat.p50 if lat else None), None, "right"), cell(millis(lat.p95 if lat else None), None, "right"),
            cell(millis(lat.p99 if lat else None), None, "right"),
            cell(spark(state.history.get((service, version)), 12), colour),
            cell(padlock(w.mtls_share if w else None)), config_cell(mine, state.config_version),
            cell(expiry(min(certs), now) if certs else "-", "warn" if certs and min(certs) - now < 60 else None),
        )))
    return out


class ServicesView(Vertical):
    def compose(self):
        yield Static("", id="services-head", classes="head")
        yield LiveTable(COLUMNS, id="services-table")

    def draw(self, app) -> None:
        state = app.state
        self.query_one("#services-head", Static).update(
            f"Services — window {app.window_s:g} s · config v{state.config_version} · "
            "[b]\\[ ][/b] shift canary weight · [b]f/F[/b] failure rate · [b]d/D[/b] delay")
        self.query_one(LiveTable).show(rows(state, app.clock(), app.filter_service))

    def selected_service(self) -> str | None:
        key = self.query_one(LiveTable).selected_key()
        return key.split("/", 1)[0] if key else None
