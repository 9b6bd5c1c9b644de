"""Docker Compose and Kubernetes: generate each lesson's compose file (minimesh/runner/compose.py),
or export a lesson for Kubernetes + Istio (minimesh/runner/k8s_export.py)."""

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


@main.group()
def export():
    """Write a lesson out for another platform (Kubernetes + Istio)."""


@export.command("k8s")
@click.argument("lesson_dir", type=click.Path(exists=True, file_okay=False, path_type=str))
@click.option("--out", default=None, help="Directory to write into (default: ./k8s-NN-slug).")
@friendly
def export_k8s(lesson_dir, out):
    """The lesson's Deployments, Services, ServiceAccounts and Istio manifests, for kubectl apply."""
    from minimesh.runner.k8s_export import export_k8s as write

    where = write(lesson_dir, out)
    click.echo(f"wrote {where}/kubernetes.yaml and the Istio manifests under {where}/istio/")
    click.echo(f"  kubectl apply -f {where}/kubernetes.yaml; then one step at a time: "
               f"kubectl apply -f {where}/istio/steps/<N-name>/")
