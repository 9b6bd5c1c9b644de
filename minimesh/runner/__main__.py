"""The detached supervisor: `python -m minimesh.runner --home H --gateway-port N LESSON_DIR`.

`minimesh up --detach` starts this in its own session with stdout and stderr
going to <home>/logs/supervisor.log. A start-up failure ends with one line
`minimesh: <what went wrong>`, which `up` reads back and shows the user.
"""

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from minimesh.errors import ConfigError, UserError
from minimesh.runner.supervisor import Supervisor
from minimesh.runner.topology import load_lesson


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minimesh.runner")
    parser.add_argument("--home", required=True)
    parser.add_argument("--gateway-port", type=int, required=True)
    parser.add_argument("lesson_dir")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        supervisor = Supervisor(load_lesson(args.lesson_dir), Path(args.home), args.gateway_port)
        asyncio.run(supervisor.run(on_ready=lambda s: logging.getLogger("minimesh.runner").info(
            "ready: gateway %s, control %s", s["gateway_url"], s["control_url"])))
    except (UserError, ConfigError) as e:
        sys.stdout.flush()
        print(f"minimesh: {e}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
