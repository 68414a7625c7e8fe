"""The template as a git repository of its own, and the change its update tests make to it.

cruft and copier read a template from git (a commit, a tag), so the tests copy the template as
it would be committed (tracked plus new, not ignored, files; symlinks kept: config/ is made of
them) into a fresh repository, and commit each version there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .answers import TEMPLATE
from .conftest import run

DEV = "{{cookiecutter.project_slug}}"
# A copier migration needs versions: each template version is tagged (cruft follows commits).
V1, V2 = "0.1.0", "0.2.0"
# v2's new option, its default, and the file that uses it (in the dev and the config repo).
NEW_OPTION, NEW_DEFAULT = "team_channel", "#ml-team"
# v2 edits these lines of a file the team also edits elsewhere (a clean merge)...
CLEAN_EDITS = {
    "README.md": ("## Daily work\n", "## Daily work with the model\n"),
    "deploy/README.md": ("## The two commands\n", "## The two commands, offline\n"),
}
# ...and the first line of a file whose first line the team rewrote too (a conflict).
CONFLICTING = "Makefile"
TEMPLATE_LINE_1 = "# v2 of the template: `make setup` once, then `make test`.\n"
TEAM_LINE_1 = "# Our team runs `make setup` on every branch switch.\n"
TEAM_TAIL = "\nMaintained by the fraud team; ask in #fraud before changing the overlays.\n"
# v2 renames a file of its own (both tools follow), and moves where a team keeps its runbook:
# a copier migration moves the team's own file (which no template version renders).
RENAMED = ("docs/ci.md", "docs/pipelines.md")
RUNBOOK = ("docs/runbook.md", "docs/runbooks/main.md")
TEAM_RUNBOOK = "# Runbook\n\nPage the on-call in #fraud-oncall.\n"
MIGRATION = f"""
_migrations:
  - version: "{V2}"
    when: "{{{{ _stage == 'before' }}}}"
    command:
      - sh
      - -c
      - if [ -e {RUNBOOK[0]} ]; then mkdir -p docs/runbooks && git mv {RUNBOOK[0]} {RUNBOOK[1]}; fi
"""


def template_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=TEMPLATE,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    return [f for f in out if f and ((TEMPLATE / f).is_symlink() or (TEMPLATE / f).is_file())]


def commit_all(repo: Path, message: str, env: dict[str, str]) -> None:
    run(["git", "add", "-A"], cwd=repo, env=env)
    run(["git", "-c", "commit.gpgsign=false", "commit", "-qm", message], cwd=repo, env=env)


def copy_template(dest: Path, env: dict[str, str]) -> Path:
    """The template's working tree, committed as v1 of a repository at ``dest``."""
    for rel in template_files():
        source, target = TEMPLATE / rel, dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            os.symlink(os.readlink(source), target)
        else:
            shutil.copy2(source, target)
    run(["git", "init", "-q", "-b", "main"], cwd=dest, env=env)
    commit_all(dest, "template v1", env)
    run(["git", "tag", V1], cwd=dest, env=env)
    return dest


def replace_once(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{path}: expected one {old!r}"
    path.write_text(text.replace(old, new))


def change_template(template: Path, env: dict[str, str]) -> None:
    """v2: a new option with a default and new files that use it, clean and conflicting edits
    in both repos' files, a renamed file with its copier migration; copier.yml regenerated."""
    spec_path = template / "cookiecutter.json"
    spec = json.loads(spec_path.read_text())
    spec = {NEW_OPTION: NEW_DEFAULT, **spec}
    spec_path.write_text(json.dumps(spec, indent=2) + "\n")
    for where in (template / DEV, template / DEV / "deploy"):
        (where / "SUPPORT.md").write_text(
            "# Support for {{ cookiecutter.project_name }}\n\n"
            "Ask in {{ cookiecutter.team_channel }}.\n"
        )
        makefile = where / CONFLICTING
        lines = makefile.read_text().splitlines(keepends=True)
        makefile.write_text(TEMPLATE_LINE_1 + "".join(lines[1:]))
    for rel, (old, new) in CLEAN_EDITS.items():
        replace_once(template / DEV / rel, old, new)
    run(["git", "mv", f"{DEV}/{RENAMED[0]}", f"{DEV}/{RENAMED[1]}"], cwd=template, env=env)
    run([sys.executable, "hooks/sync_copier.py"], cwd=template, env=env)
    with (template / "copier.yml").open("a") as copier_yml:
        copier_yml.write(MIGRATION)
    commit_all(template, "template v2", env)
    run(["git", "tag", V2], cwd=template, env=env)


def team_edits(dev: Path, config: Path, env: dict[str, str]) -> None:
    """The team's own commits in both repos, and a runbook of its own in the dev repo."""
    for repo in (dev, config):
        with (repo / "README.md").open("a") as readme:
            readme.write(TEAM_TAIL)
        makefile = repo / CONFLICTING
        lines = makefile.read_text().splitlines(keepends=True)
        makefile.write_text(TEAM_LINE_1 + "".join(lines[1:]))
    (dev / RUNBOOK[0]).write_text(TEAM_RUNBOOK)
    for repo in (dev, config):
        if (repo / ".git").exists():  # an embedded deploy/ is committed with the dev repo
            commit_all(repo, "Our own edits", env)


RECORDS = {".cruft.json", ".copier-answers.yml"}


def tree(root: Path) -> dict[str, Path]:
    """Every file but .git and the tools' records (they name the commit, checked apart)."""
    return {
        p.relative_to(root).as_posix(): p
        for p in root.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(root).parts and p.name not in RECORDS
    }
