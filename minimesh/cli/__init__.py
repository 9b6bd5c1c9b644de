"""The `minimesh` command: every subcommand, each a thin shell over a module,
grouped by concept one file each (mesh processes, stack, config, lessons,
observing, compose, access policies)."""

from minimesh.cli.base import main
from minimesh.cli import authz, compose, config, lesson, mesh, observe, stack  # noqa: F401  (they register their commands)

__all__ = ["main"]
