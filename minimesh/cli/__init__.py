"""The `minimesh` command: every subcommand, each a thin shell over a module,
grouped by concept one file each (mesh processes, stack, config, lessons,
observing, compose, doctor, access policies)."""

from minimesh.cli.base import main
from minimesh.cli import authz, compose, config, doctor, lesson, mesh, observe, stack  # noqa: F401  (they register their commands)

__all__ = ["main"]
