"""`?`: the keys, k9s style, in a box over the current view."""

from __future__ import annotations

from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS = (
    ("?", "this help (any key closes it)"),
    (":", "jump to a view: services, edges, routes, tap, trace, lesson (or 1-6)"),
    ("/", "filter: a service and/or a status class, e.g. `payments 5xx`; empty clears"),
    ("space", "pause / resume the live picture"),
    ("↑ ↓", "select a row; in tap, the request is explained below"),
    ("w", "the selected request's trace as a waterfall"),
    ("[ ]", "canary: move 10 % of the selected service's traffic to the first / last subset"),
    ("f F", "fault: raise / lower the selected service's failure rate"),
    ("d D", "fault: raise / lower the selected service's delay"),
    ("g", "generate a little traffic through the gateway (on / off)"),
    ("n", "lesson: put the next step in force and check it"),
    ("c", "lesson: check the current step"),
    ("q", "quit (Ctrl-C too); the terminal is restored"),
)


class HelpScreen(ModalScreen):
    BINDINGS = [("escape", "dismiss", "close")]

    def compose(self):
        lines = "\n".join(f"[b cyan]{key:>6}[/]  {what}" for key, what in KEYS)
        with Vertical(id="help-box"):
            yield Static("[b]minimesh tui — keys[/b]\n\n" + lines, id="help-text")

    def on_key(self, event) -> None:
        event.stop()
        self.dismiss()
