"""The docs keep up with the template: every option is documented."""

from __future__ import annotations

import json
import re

from .conftest import TEMPLATE

OPTIONS = [
    key
    for key in json.loads((TEMPLATE / "cookiecutter.json").read_text())
    if not key.startswith("_")
]


def documented_options() -> set[str]:
    readme = (TEMPLATE / "README.md").read_text()
    table = readme.split("## Options", 1)[1].split("\n## ", 1)[0]
    return {name for cell in re.findall(r"^\| ([^|]+) \|", table, re.M) for name in re.findall(r"`([a-z_]+)`", cell)}


def test_every_option_is_documented_in_the_readme():
    missing = sorted(set(OPTIONS) - documented_options())
    assert not missing, f"options missing from the README's Options table: {missing}"


def test_the_readme_documents_no_removed_option():
    stale = sorted(documented_options() - set(OPTIONS))
    assert not stale, f"the README documents options cookiecutter.json no longer has: {stale}"
