"""`minimesh tui`: find the stack, check it answers, run the app, give the terminal back.

Which control plane: `--control URL` (a compose stack: https://127.0.0.1:15010),
else the one recorded in MINIMESH_HOME/state.json by `minimesh up`, which
also names the gateway (for `g`, generated traffic, and lesson checks) and the
lesson (for the lesson panel; a compose stack's control plane names its
lesson itself). Textual restores the terminal when the app
returns or raises; SIGTERM and SIGHUP are turned into a normal exit so that
path restores it too.
"""

from __future__ import annotations

from minimesh.errors import UserError
from minimesh.runner import state as st
from tui.client import ControlClient, HttpTransport, Unreachable


def where(control: str | None, gateway: str | None, lesson: str | None, home: str | None):
    """(control_url, gateway_url, lesson_ref, home_path or None) for the stack to watch."""
    home_path = st.resolve_home(home)
    state = st.read_state(home_path) if not control else None
    if not control:
        if not state or not st.is_locked(home_path):
            raise UserError(f"no stack is running in {home_path}; start one with `minimesh up LESSON_DIR` "
                            "(or `make demo`), or pass --control URL")
        control = state["control_url"]
    state = state or {}
    return (control.rstrip("/"), gateway or state.get("gateway_url"), lesson or state.get("lesson"),
            home_path if state else None)


def build_app(control: str | None = None, *, gateway: str | None = None, lesson: str | None = None,
              home: str | None = None, window: float = 30.0, handle_signals: bool = False,
              traffic: bool = False):
    from tui.app import MeshTUI
    from tui.lesson_steps import locate

    control_url, gateway_url, lesson_ref, home_path = where(control, gateway, lesson, home)
    client = ControlClient(HttpTransport(control_url, home=home_path))
    try:
        status = client.status()
    except Unreachable as e:
        raise UserError(f"cannot reach the control plane at {control_url} ({e}); is the stack running? "
                        "try `minimesh status`") from e
    # A compose stack has no state.json: its control plane says which lesson it runs.
    lesson_ref = lesson_ref or status.lesson
    try:
        place = locate(lesson_ref, home_path) if lesson_ref else None
    except UserError:
        place = None  # a lesson this checkout does not have: the panel says how to name one
    return MeshTUI(client, window_s=window, home=home_path, lesson=place, gateway_url=gateway_url,
                   handle_signals=handle_signals, traffic=traffic)


def run_tui(control: str | None = None, **kwargs) -> int:
    app = build_app(control, handle_signals=True, **kwargs)
    app.run()
    return app.return_code or 0
