"""The docs keep up with the template: every option is documented."""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess

from .conftest import TEMPLATE

OPTIONS = [
    key
    for key in json.loads((TEMPLATE / "cookiecutter.json").read_text())
    if not key.startswith("_")
]


def documented_options() -> set[str]:
    readme = (TEMPLATE / "README.md").read_text()
    table = readme.split("## Options", 1)[1].split("\n## ", 1)[0]
    return {
        name
        for cell in re.findall(r"^\| ([^|]+) \|", table, re.M)
        for name in re.findall(r"`([a-z_]+)`", cell)
    }


def test_every_option_is_documented_in_the_readme():
    missing = sorted(set(OPTIONS) - documented_options())
    assert not missing, f"options missing from the README's Options table: {missing}"


def test_the_readme_documents_no_removed_option():
    stale = sorted(documented_options() - set(OPTIONS))
    assert not stale, f"the README documents options cookiecutter.json no longer has: {stale}"


def layout_entries(readme: str) -> list[str]:
    table = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    first_cells = re.findall(r"^\| ([^|]+) \|", table, re.M)
    return [path for cell in first_cells for path in re.findall(r"`([^`]+)`", cell)]


def covered(path: str, entries: list[str]) -> bool:
    return any(
        path == entry
        or (entry.endswith("/") and path.startswith(entry))
        or ("*" in entry and fnmatch.fnmatch(path, entry))
        for entry in entries
    )


def test_every_generated_file_is_explained_in_the_readme(scenario):
    entries = layout_entries((scenario.dev / "README.md").read_text())
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=scenario.dev, capture_output=True, text=True, check=True
    ).stdout.split()
    # The package's __init__ files and the README itself need no row.
    unexplained = [
        path
        for path in tracked
        if not covered(path, entries) and path != "README.md" and not path.endswith("__init__.py")
    ]
    assert not unexplained, f"generated files missing from the README's Layout table: {unexplained}"
