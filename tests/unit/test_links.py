"""Every relative link a learner can click resolves, and every "next lesson" exists (issue 18, defect 16).

README.md, lessons/ and docs/: a link to a file must name a file of the
repository (a clone has nothing outside it, so no `../shared/...`), an
anchor must name a heading of its page (GitHub's slugs), and a lesson's
"Next" section must link the next lesson when it exists, and may mention a
later one only as "coming", without a link.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", *(ROOT / "lessons").rglob("*.md"), *(ROOT / "docs").rglob("*.md")])
LESSONS = {p.name[:2]: p for p in (ROOT / "lessons").glob("[0-9][0-9]-*") if (p / "README.md").is_file()}

_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^```.*?^```", re.S | re.M)
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*$", re.M)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(h) for h in _HEADING.findall(_FENCE.sub("", page.read_text(encoding="utf-8")))}


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))  # code blocks show commands, not links
    problems = []
    for match in _LINK.finditer(text):
        target = match.group(1) or match.group(2)
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        if not dest.exists():
            problems.append(f"{target}: no such file")
        elif root not in dest.parents:
            problems.append(f"{target}: outside the repository (a clone does not have it)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{target}: no heading #{anchor} in {dest.name}")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    assert broken_links(page) == []


def next_section(readme: Path) -> str:
    text = readme.read_text(encoding="utf-8")
    return text.split("\n## Next", 1)[1] if "\n## Next" in text else ""


def next_problems(number: str, section: str) -> list[str]:
    """The promises a Next section makes: the next lesson linked if it exists; a missing one only "coming"."""
    problems = []
    following = f"{int(number) + 1:02d}"
    linked = {m.group(1) for m in re.finditer(r"\]\(\.\./(\d{2})-[\w-]+/README\.md\)", section)}
    if following in LESSONS and following not in linked:
        problems.append(f"lesson {following} exists but the Next section does not link it")
    for paragraph in section.split("\n\n"):
        for mentioned in re.findall(r"[Ll]essons? (\d{2})\b|\[(\d{2}) ·", paragraph):
            n = mentioned[0] or mentioned[1]
            if n not in LESSONS and "coming" not in paragraph:
                problems.append(f"lesson {n} does not exist yet; say it is coming, without a link")
    return problems + [f"links lesson {n}, which does not exist" for n in linked if n not in LESSONS]


@pytest.mark.parametrize("number", sorted(LESSONS))
def test_every_next_lesson_exists(number):
    assert next_problems(number, next_section(LESSONS[number] / "README.md")) == []


def test_the_checks_can_fail(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("[design](../shared/DESIGN.md) [here](#nowhere)\n# Title\n")
    assert [p.split(":")[1].strip() for p in broken_links(page, tmp_path)] == ["no such file", "no heading #nowhere in page.md"]
    assert next_problems("98", "Lesson 99 puts it all on one screen.") == [
        "lesson 99 does not exist yet; say it is coming, without a link"]
