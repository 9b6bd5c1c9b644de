"""The compose-mode walkthrough's READMEs and its promise matcher, without Docker.

tests/e2e/test_compose_walkthrough.py runs every ```sh compose block of
lessons 01-05 against a real compose stack (`make compose-e2e`); this checks,
on every `make test`, that those blocks make a walkthrough at all — the
README's own `up -d` first, its `down -v` last, the same project throughout —
and that none uses what only the local stack has.
"""

import re
from pathlib import Path

import pytest

from tests.e2e.readme_walkthrough import WALKED as NAMES, blocks, compose_up, promise_problems

ROOT = Path(__file__).resolve().parents[2]
WALKED = [ROOT / "lessons" / name for name in NAMES]
LOCAL_ONLY = re.compile(r"minimesh (up|down|stop|start)\b|minimesh home\)/logs|CATALOG_INBOUND|\.admin\b|"
                        r"\| \.app\b")


@pytest.mark.parametrize("lesson", WALKED, ids=lambda p: p.name)
def test_a_readme_walks_from_its_compose_up_to_its_down(lesson):
    text = (lesson / "README.md").read_text(encoding="utf-8")
    walk = blocks(text)
    project, file = compose_up(text)
    assert (project, file) == (f"minimesh-{lesson.name}", f"compose/{lesson.name}.yaml")
    assert (ROOT / file).is_file()
    assert f"docker compose -p {project} -f {file} up -d" in walk[0].code, "the walk starts with the README's up"
    assert walk[-1].code.strip() == f"docker compose -p {project} -f {file} down -v", "and ends with its down -v"
    assert any("MINIMESH_CONTROL_URL=" in b.code for b in walk[:2]), "the CLI is pointed at the compose stack"
    assert any(f"minimesh lesson step {lesson.name[:2]}" in b.code for b in walk)
    for b in walk:
        assert not LOCAL_ONLY.search(b.code), f"README.md:{b.line} is marked compose but needs the local stack"
        for other in re.findall(r"docker compose -p (\S+) -f (\S+)", b.code):
            assert other == (project, file), f"README.md:{b.line}: another project or file"


README = """\
```sh compose
docker compose -p minimesh-01-x -f compose/01-x.yaml up -d
```

```sh
minimesh up lessons/01-x
```

```sh compose
for i in $(seq 3); do curl -s localhost:8080/; done | sort | uniq -c
```
```
      3 catalog-v1-0
```

text

```sh compose
docker compose -p minimesh-01-x -f compose/01-x.yaml down -v
```
"""


def test_blocks_are_the_compose_ones_in_order_with_what_they_promise():
    walk = blocks(README)
    assert [b.line for b in walk] == [1, 9, 18]
    assert walk[1].promised == "      3 catalog-v1-0\n" and walk[0].promised is None
    assert compose_up(README) == ("minimesh-01-x", "compose/01-x.yaml")


@pytest.mark.parametrize("promised, printed, missing", [
    ("     10 catalog-v1-0\n", "      9 catalog-v1-2\n", []),  # numbers may differ, counts and instances alike
    ("  ✓ check: measured 97.5% of 200\nPASS\n", "Checking x\n  ✓ check: measured 100% of 200\nPASS\n", []),
    ("PASS\n", "FAIL\n", ["PASS"]),
    ("serial 504fe8bd7ae1898b  15s\n", "serial 2691f92b8d971a90  9s\n", []),  # hex ids too
    ("step 2 of 03-canary in force\n", "step 2 of 03-canary is not in force\n", ["step 2 of 03-canary in force"]),
    ("ids=p3\n…\n(one run)\n", "ids=p3\n", []),  # commentary lines are skipped
])
def test_a_promise_holds_with_numbers_aside(promised, printed, missing):
    assert promise_problems(promised, printed) == missing
