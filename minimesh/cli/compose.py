"""Docker Compose: generate each lesson's compose file (minimesh/runner/compose.py)."""

import sys

import click

from minimesh.cli.base import friendly, main


@main.command()
@click.argument("lesson_dirs", nargs=-1, type=click.Path(exists=True, file_okay=False, path_type=str))
@click.option("--check", is_flag=True, help="Exit 1 if a committed compose file differs from what its lesson generates.")
@click.option("-o", "--output", default=None, help="Write here instead of compose/NN-slug.yaml ('-': stdout).")
@friendly
def compose(lesson_dirs, check, output):
    """Generate each lesson's Docker Compose file, compose/NN-slug.yaml (default: every lesson)."""
    from minimesh.lesson.catalog import all_lessons
    from minimesh.runner.compose import compose_lessons

    if not compose_lessons(list(lesson_dirs) or all_lessons(), check=check, output=output):
        sys.exit(1)
