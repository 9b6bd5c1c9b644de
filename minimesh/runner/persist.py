"""What a stack keeps across `down`/`up`: one rule in both run modes.

Applied config survives `down` and `up` of the same lesson — as a cluster
keeps its objects when its nodes restart, and as a compose stack keeps its
control plane's volume (each lesson's compose file has its own project name,
so its own volume). A lesson never inherits another lesson's config: starting
a different lesson in a home starts from that lesson's own manifests, as a
different compose project would. `up --fresh` (compose: `down -v`) forgets
the config on purpose.

The CA, the join secret and the admin credentials stay in any case: they are
the mesh's identity, not its config.
"""

from __future__ import annotations

from pathlib import Path


def config_file(home: Path) -> Path:
    return home / "control" / "config.json"


def lesson_marker(home: Path) -> Path:
    """Which lesson the kept config belongs to (its folder name)."""
    return home / "control" / "lesson"


def keep_or_forget(home: Path, lesson_name: str, *, fresh: bool) -> str:
    """Apply the rule before a new `up`; return what happened: "kept", "forgot" or "new"."""
    config, marker = config_file(home), lesson_marker(home)
    try:
        previous = marker.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        previous = None
    outcome = "new"
    if config.exists():
        if fresh or previous != lesson_name:
            config.unlink()
            outcome = "forgot"
        else:
            outcome = "kept"
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(lesson_name + "\n", encoding="utf-8")
    return outcome


def has_kept_config(home: Path) -> bool:
    """True when this home's control plane will start with config from a previous run."""
    return config_file(home).exists()
