"""The documentation: a short front page, every link inside the repository and alive, and a
command-line reference that says what the parser says."""

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_readme_is_a_front_page():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    for command in ("make demo", "make test"):
        assert command in text


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_links_stay_inside_the_repository_and_resolve(page):
    for target in LINK.findall(page.read_text()):
        assert not re.match(r"[a-z]+://", target), f"{page.name} links outside the repository: {target}"
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.is_relative_to(ROOT) and resolved.exists(), f"{page.name}: {target} does not exist"
        if anchor and resolved.suffix == ".md":
            headings = {_anchor(line.lstrip("#").strip()) for line in resolved.read_text().splitlines()
                        if line.startswith("#")}
            assert anchor in headings, f"{page.name}: no heading #{anchor} in {resolved.name}"


def test_every_docs_page_is_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    for page in (ROOT / "docs").glob("*.md"):
        assert f"docs/{page.name}" in readme, page.name


def test_the_cli_reference_is_up_to_date():
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import cli_reference
    finally:
        sys.path.remove(str(ROOT / "tools"))
    assert (ROOT / "docs" / "cli.md").read_text() == cli_reference.render(), \
        "docs/cli.md is out of date: run python tools/cli_reference.py"


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
