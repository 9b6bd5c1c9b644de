"""`minimesh load LESSON --each-step`: the lesson's crowd at every step, and a table of what each step changed.

A lesson's steps change one thing at a time (a limit, a policy, a fault), and
its locustfile is the crowd that feels the change. This puts each step in
force (`minimesh lesson step`), runs the locustfile headless for the same
short time, keeps locust's CSVs per step (<prefix>-stepN_stats.csv), and
reads the rows asked for into one table:

    | step | requests to | requests | failed | p50 | p95 | load avg |
    |---|---|---:|---:|---:|---:|---:|
    | 1 · pile-up | /api/checkout | 148 | 0.0 % | 430 ms | 580 ms | 1.9 |

written as Markdown to the file given (lessons/07-resilience/RESULTS.md is
made this way: `make lesson-load LESSON=07-resilience`). Reading the CSV is
pure (`read_rows`, `results_table`); only `run_each_step` does I/O.
"""

from __future__ import annotations

import csv
import os
import platform
import time
from dataclasses import dataclass, replace
from pathlib import Path

import click

from minimesh.errors import UserError
from minimesh.lesson.catalog import load_guide
from minimesh.lesson.load import LoadOptions, run_load

AGGREGATED = "Aggregated"  # locust's total over every request name


@dataclass(frozen=True)
class StepRow:
    step: str  # "3 · outlier-detection"
    name: str  # locust's request name, or "Aggregated"
    requests: int
    failures: int
    p50_ms: float | None
    p95_ms: float | None
    load: float | None = None  # the machine's 1-minute load average as the step's run ended

    @property
    def failure_pct(self) -> float:
        return 100.0 * self.failures / self.requests if self.requests else 0.0


def _ms(text: str) -> float | None:
    return None if text in ("", "N/A") else float(text)


def read_rows(stats_csv: Path, step: str, names: tuple[str, ...]) -> list[StepRow]:
    """The rows named (locust's "Name" column) from a <prefix>_stats.csv; a name with no row is a zero row."""
    with open(stats_csv, newline="", encoding="utf-8") as f:
        found = {row["Name"]: row for row in csv.DictReader(f)}
    rows = []
    for name in names:
        row = found.get(name)
        if row is None:
            rows.append(StepRow(step, name, 0, 0, None, None))
            continue
        rows.append(StepRow(step, name, int(row["Request Count"]), int(row["Failure Count"]),
                            _ms(row["50%"]), _ms(row["95%"])))
    return rows


def results_table(rows: list[StepRow]) -> str:
    lines = ["| step | requests to | requests | failed | p50 | p95 | load avg |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        p50 = "-" if r.p50_ms is None else f"{r.p50_ms:.0f} ms"
        p95 = "-" if r.p95_ms is None else f"{r.p95_ms:.0f} ms"
        load = "-" if r.load is None else f"{r.load:.1f}"
        lines.append(f"| {r.step} | {r.name} | {r.requests} | {r.failure_pct:.1f} % | {p50} | {p95} | {load} |")
    return "\n".join(lines) + "\n"


def results_page(lesson: str, rows: list[StepRow], opts: LoadOptions, prefix: Path, when: float) -> str:
    crowd = f"{opts.users or 20} users for {opts.run_time} per step"
    return (f"# {lesson} under load, step by step\n\n"
            f"Made by `minimesh load {lesson} --each-step` (`make lesson-load LESSON={lesson}`), not by hand: "
            f"the lesson's locustfile, {crowd}, after `minimesh lesson step` of each step; "
            f"locust's CSVs were {prefix}-stepN_stats.csv. "
            f"Run on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(when))}, "
            f"{platform.system()} with Python {platform.python_version()} on {os.cpu_count()} cores ("
            f"\"load avg\": the 1-minute load average as the step ended; above the core count, "
            f"everything queues for the CPU). The numbers vary from run to run and machine to machine; "
            f"the differences between the steps do not.\n\n"
            + results_table(rows))


def run_each_step(ref: str, opts: LoadOptions, names: tuple[str, ...], results: str | None,
                  gateway: str | None = None, control: str | None = None, only: tuple[int, ...] = ()) -> int:
    """Every step (or those in `only`) in turn: put it in force, run the crowd, read its CSV.

    Returns the worst locust exit code (each locustfile gates on its error ratio).
    """
    from minimesh.lesson import commands

    guide = load_guide(ref)
    lesson = guide.lesson.dir.name
    prefix = Path(opts.csv_prefix) if opts.csv_prefix else Path(f"/tmp/minimesh-load-{lesson}")
    rows: list[StepRow] = []
    worst = 0
    for number in only:
        guide.step(number)  # a step the lesson does not have: one clear line before anything runs
    for number, step in enumerate(guide.steps, 1):
        if only and number not in only:
            continue
        click.echo(f"\n== step {number}: {step.title}")
        commands.step(ref, number, control=control)
        step_prefix = Path(f"{prefix}-step{number}")
        code = run_load(ref, replace(opts, csv_prefix=str(step_prefix)), gateway=gateway)
        worst = max(worst, code)
        stats = Path(f"{step_prefix}_stats.csv")
        if not stats.is_file():
            raise UserError(f"locust wrote no {stats} for step {number}: see its output above")
        load = os.getloadavg()[0]  # a busy machine stretches every latency: say how busy it was
        rows += [replace(r, load=load) for r in read_rows(stats, f"{number} · {step.name}", names)]
    click.echo("\n" + results_table(rows))
    if results:
        Path(results).write_text(results_page(lesson, rows, opts, prefix, time.time()), encoding="utf-8")
        click.echo(f"table written to {results}")
    return worst
