"""The docs: a short README, a site that builds with no broken link or missing page, and reference pages
that are exactly what the CLI's own definitions render (a changed option fails here until regenerated)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from imagepipe.cli import reference

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("page", sorted(reference.PAGES))
def test_the_generated_reference_page_is_what_the_cli_renders(page):
    committed = (ROOT / "docs/reference" / page).read_text()
    assert committed == reference.PAGES[page](), (
        f"docs/reference/{page} is stale: run `python -m imagepipe.cli.reference docs/reference`")


def test_every_option_of_every_group_is_on_the_options_page():
    page = reference.options_page()
    for group in reference.arguments.GROUPS:
        for action in reference._options(group):
            assert all(f"`{flag}`" in page for flag in action.option_strings), action.option_strings


def test_the_site_builds_strict(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "site/reference/options/index.html").exists()


def test_the_readme_is_at_most_12_kb_and_links_only_to_pages_that_exist():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) <= 12 * 1024
    for target in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / target).is_file(), target
