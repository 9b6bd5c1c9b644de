"""The telemetry commands: `minimesh stat`, `tap`, `trace` and `explain`.

Each reads the control plane's telemetry API (minimesh/control/telemetry_api.py)
and prints it for a terminal, or as JSON with `--json`. The formatting
functions are pure, so the TUI and tests can reuse them.
"""
