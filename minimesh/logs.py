"""Logging and event-loop setup shared by minimesh's long-running processes."""

from __future__ import annotations

import asyncio
import logging
import sys


def setup_logging(level: int = logging.INFO) -> None:
    """One line per event on stderr (the runner sends it to MINIMESH_HOME/logs)."""
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def run_async(main) -> None:
    """Run `main` on uvloop where it is installed (faster sockets and TLS), else asyncio.

    MINIMESH_EVENT_LOOP=asyncio forces the standard loop (what a platform without uvloop runs).
    """
    import os

    factory = None
    if os.environ.get("MINIMESH_EVENT_LOOP", "uvloop") != "asyncio":
        try:
            import uvloop
            factory = uvloop.new_event_loop
        except ImportError:
            pass
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main)
