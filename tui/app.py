"""The App: a bar of views, one view at a time, a status line; keys in k9s's habits.

Theory of operation. Two worker threads fetch from the control plane and
never touch a widget: the mesh worker polls rollups, sync status and config
once a second; the tap worker long-polls the request stream while the tap
view is on screen. Each hands what it got to the UI thread with
`call_from_thread`, which waits until the UI has taken it — so a worker can
never run ahead of the drawing, and a stream faster than the terminal is
sampled (state.py) rather than queued. Every delivery the UI draws bumps
`refreshes`, shown as ↻ in the status line (the performance test reads it
off the screen).

Actions that change the mesh (canary weights, fault knobs, traffic:
steering.py; lesson steps: lesson_keys.py) also run in threads and report
back in the status line.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from pathlib import Path

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.widgets import ContentSwitcher, Input, Static
from textual.worker import get_current_worker

from tui.client import ControlClient, RecordedTransport, Unreachable
from tui.feed import parse_filter
from tui.lesson_keys import LessonKeys
from tui.state import MeshPoll, MeshState
from tui.steering import SteeringKeys
from tui.views import VIEWS
from tui.views.edges import EdgesView
from tui.views.help import HelpScreen
from tui.views.lesson import LessonView
from tui.views.table import closing_race
from tui.views.routes import RoutesView
from tui.views.services import ServicesView
from tui.views.tap import TapView
from tui.views.trace import TraceView

ALIASES = {"svc": "services", "s": "services", "e": "edges", "r": "routes", "top": "routes", "t": "tap",
           "tr": "trace", "l": "lesson"}
SPARK_WINDOW_S = 5


class MeshTUI(SteeringKeys, LessonKeys, App):
    CSS_PATH = "minimesh.tcss"
    TITLE = "minimesh"
    BINDINGS = [
        Binding("q", "quit", "quit"), Binding("ctrl+c", "quit", "quit", priority=True),
        Binding("question_mark", "help", "help"), Binding("slash", "prompt('filter')", "filter"),
        Binding("colon", "prompt('view')", "view"), Binding("space", "pause", "pause"),
        *[Binding(str(i), f"show('{name}')", name) for i, name in enumerate(VIEWS, 1)],
        Binding("left_square_bracket", "shift(-10)", "weight to first subset"),
        Binding("right_square_bracket", "shift(10)", "weight to last subset"),
        Binding("f", "fault('failure_rate', 1)"), Binding("F", "fault('failure_rate', -1)"),
        Binding("d", "fault('delay_ms', 1)"), Binding("D", "fault('delay_ms', -1)"),
        Binding("g", "traffic"), Binding("w", "waterfall"), Binding("n", "lesson_next"), Binding("c", "lesson_check"),
    ]

    def __init__(self, client: ControlClient, *, window_s: float = 30.0, interval: float = 0.5,
                 tap_interval: float = 0.5, home: Path | None = None, lesson=None, gateway_url: str | None = None,
                 clock=time.time, localtime=time.localtime, start_view: str = "services",
                 handle_signals: bool = False, traffic: bool = False):
        super().__init__()
        self.traffic_on_start = traffic
        self.handle_signals = handle_signals
        self.client = client
        self.window_s, self.interval, self.tap_interval = window_s, interval, tap_interval
        self.home, self.lesson, self.gateway_url = home, lesson, gateway_url
        self.clock, self.localtime = clock, localtime
        self.view = start_view
        self.state = MeshState()
        self.refreshes = 0
        self.paused = False
        self.filter_service: str | None = None
        self.filter_status: str | None = None
        self.selected_event = None
        self.trace_id: str | None = None
        self.message = ""
        self.lesson_busy: str | None = None
        self.lesson_log: list[str] = []
        self.lesson_verdicts = None
        self._prompt_kind = "filter"
        self._stopping = threading.Event()
        self._traffic: threading.Event | None = None

    # --- layout --------------------------------------------------------------

    def compose(self):
        yield Static("", id="topbar")
        with ContentSwitcher(initial=self.view):
            yield ServicesView(id="services")
            yield EdgesView(id="edges")
            yield RoutesView(id="routes")
            yield TapView(id="tap")
            yield TraceView(id="trace")
            yield LessonView(id="lesson")
        yield Input(id="prompt", disabled=True)  # enabled only while open, so it never steals focus
        yield Static("", id="statusbar")

    def on_mount(self) -> None:
        if self.handle_signals:  # SIGTERM/SIGHUP: a normal exit, so the terminal is restored
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGHUP):
                loop.add_signal_handler(sig, lambda: self.exit(return_code=0))
        self.run_worker(self._mesh_loop, thread=True, name="mesh", group="data")
        self.run_worker(self._tap_loop, thread=True, name="tap", group="data")
        if self.view == "trace":
            self.fetch_trace(None)
        self.focus_view()
        self.redraw()
        if self.traffic_on_start:
            self.action_traffic()

    def focus_view(self) -> None:
        tables = self.current().query("LiveTable")
        if tables:
            tables.first().focus()
        else:
            self.set_focus(None)

    def on_unmount(self) -> None:
        self._stopping.set()
        if self._traffic is not None:
            self._traffic.set()

    def current(self):
        return self.query_one(f"#{self.view}")

    def redraw(self) -> None:
        tabs = "  ".join(f"[reverse] {i}:{name} [/]" if name == self.view else f" {i}:{name} "
                         for i, name in enumerate(VIEWS, 1))
        self.query_one("#topbar", Static).update(f"[b]minimesh[/b] {tabs}   [dim]{self.client.url}[/]")
        self.current().draw(self)
        self.draw_status()

    def draw_status(self) -> None:
        parts = [f"↻ {self.refreshes}", time.strftime("%H:%M:%S", self.localtime(self.clock()))]
        if self.paused:
            parts.append("[b yellow]PAUSED[/]")
        if self.filter_service or self.filter_status:
            parts.append(f"/{' '.join(x for x in (self.filter_service, self.filter_status) if x)}")
        if self._traffic is not None:
            parts.append("[green]traffic on[/]")
        if self.state.error:
            parts.append(f"[red]{self.state.error}[/]")
        if self.message:
            parts.append(self.message)
        parts.append("[dim]? help  q quit[/]")
        self.query_one("#statusbar", Static).update(" · ".join(parts))

    # --- data workers (threads) ---------------------------------------------

    def _deliver(self, fn, *args) -> bool:
        """Run fn on the UI thread and wait for it; False once the app is going away."""
        if self._stopping.is_set():
            return False
        try:
            self.call_from_thread(fn, *args)
        except RuntimeError:
            return False
        return True

    def _mesh_loop(self) -> None:
        worker = get_current_worker()
        rounds = 0
        while not self._stopping.is_set() and not worker.is_cancelled:
            started = time.monotonic()
            if not self.paused:
                try:
                    # Rollups every round; the sparkline's short window and sync state every other one,
                    # so a busy control plane answers one request per refresh, not five.
                    slow = rounds % 2 == 0
                    poll = MeshPoll(stat=self.client.stat(self.window_s),
                                    recent=self.client.stat(SPARK_WINDOW_S) if slow else None,
                                    status=self.client.status() if slow else None,
                                    config=self.client.config() if rounds % 4 == 1 else None,
                                    instances=self.client.instances() if rounds % 10 == 1 else None)
                except RecordedTransport.Exhausted:
                    return
                except (Unreachable, ValueError, KeyError) as e:
                    if not self._deliver(self._lost, str(e)):
                        return
                else:
                    if not self._deliver(self._take_mesh, poll):
                        return
                rounds += 1
            self._stopping.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def _tap_loop(self) -> None:
        worker = get_current_worker()
        since, asked = None, None
        while not self._stopping.is_set() and not worker.is_cancelled:
            if self.paused or self.view != "tap":
                since = None  # resume from "now", not with a backlog
                self._stopping.wait(0.1)
                continue
            wanted = (self.filter_service, self.filter_status)
            if wanted != asked:
                since, asked = None, wanted
            started = time.monotonic()
            try:
                events, since = self.client.tap(since, 1.0, *wanted)
            except RecordedTransport.Exhausted:
                return
            except (Unreachable, ValueError, KeyError) as e:
                if not self._deliver(self._lost, str(e)):
                    return
                events = []
            if events and not self._deliver(self._take_tap, events, wanted):
                return
            self._stopping.wait(max(0.0, self.tap_interval - (time.monotonic() - started)))

    def _take_mesh(self, poll: MeshPoll) -> None:
        if self.paused:
            return
        self.state.take_mesh(poll)
        self.refreshes += 1
        with closing_race():
            if self.view != "tap":
                self.current().draw(self)
            self.draw_status()

    def _take_tap(self, events, asked: tuple) -> None:
        if self.paused or self.view != "tap" or asked != (self.filter_service, self.filter_status):
            return  # fetched for a filter that has changed since: not what the learner asked for
        self.state.take_tap(events, self.clock())
        self.refreshes += 1
        with closing_race():
            self.current().draw(self)
            self.draw_status()

    def _lost(self, error: str) -> None:
        self.state.error = f"control plane: {error}"
        self.draw_status()

    # --- keys ----------------------------------------------------------------

    def action_show(self, name: str) -> None:
        name = ALIASES.get(name, name)
        if name not in VIEWS:
            self.say(f"no view {name!r}; the views are {', '.join(VIEWS)}")
            return
        self.view = name
        self.query_one(ContentSwitcher).current = name
        self.focus_view()
        if name == "trace" and self.trace_id is None:
            self.fetch_trace(None)
        self.redraw()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_prompt(self, kind: str) -> None:
        prompt = self.query_one("#prompt", Input)
        self._prompt_kind = kind
        prompt.placeholder = ("filter: a service and/or status class (payments 5xx); empty clears" if kind == "filter"
                              else "view: " + " ".join(VIEWS))
        prompt.value = ""
        prompt.disabled = False
        prompt.add_class("open")
        prompt.focus()

    def close_prompt(self) -> None:
        prompt = self.query_one("#prompt", Input)
        prompt.remove_class("open")
        prompt.disabled = True
        self.focus_view()

    def on_input_submitted(self, message: Input.Submitted) -> None:
        self.close_prompt()
        text = message.value.strip()
        if self._prompt_kind == "filter":
            self.filter_service, self.filter_status = parse_filter(text)
            self.state.tap.clear()
            self.redraw()
        elif text:
            self.action_show(text)

    def on_key(self, event) -> None:
        prompt = self.query_one("#prompt", Input)
        if event.key == "escape" and prompt.has_class("open"):
            self.close_prompt()

    def action_pause(self) -> None:
        self.paused = not self.paused
        self.say("paused: the picture holds still" if self.paused else "resumed")

    def say(self, message: str) -> None:
        self.message = message
        self.draw_status()

    def selected_service(self) -> str | None:
        view = self.current()
        picked = view.selected_service() if hasattr(view, "selected_service") else None
        if picked is None and self.selected_event is not None:
            picked = self.selected_event.destination.service
        return picked

    # --- selection and traces ------------------------------------------------

    def select_event(self, event) -> None:
        self.selected_event = event
        self.trace_id = event.trace_id
        self.current().draw_explanation(self) if self.view == "tap" else None
        if event.trace_id and (event.retries or self.view == "trace") and event.trace_id not in self.state.traces:
            self.fetch_trace(event.trace_id)

    def action_waterfall(self) -> None:
        if self.trace_id and self.trace_id not in self.state.traces:
            self.fetch_trace(self.trace_id)
        self.action_show("trace")

    @work(thread=True, exclusive=True, group="trace")
    def fetch_trace(self, trace_id: str | None) -> None:
        try:
            if trace_id is None:
                trace_id = self.client.slowest_trace_id()
                if trace_id is None:
                    return
            trace = self.client.trace(trace_id)
        except (Unreachable, RecordedTransport.Exhausted):
            return
        if trace is not None:
            self._deliver(self._took_trace, trace)

    def _took_trace(self, trace) -> None:
        self.state.keep_trace(trace)
        if self.trace_id is None:
            self.trace_id = trace.trace_id
        if self.view in ("trace", "tap"):
            self.current().draw(self) if self.view == "trace" else self.current().draw_explanation(self)
