"""copier's post-copy task: what the post-generation hook does under cookiecutter.

Run by copier in the new repository after a ``copier copy`` (never on ``copier update``):
for the dev repo with config_repo=separate it copies the config repo's part of the template
beside it, from the same template commit (so that repo records its own answers and updates on
its own), then makes each new repo a git repository with a first commit. The pruned files are
already excluded by copier.yml. On a failure the sibling it created is removed again; copier
removes the dev repo it created.

    python hooks/copier_tasks.py '<cookiecutter namespace as JSON>' <template clone> <commit> \\
        <template as the user named it>
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

HOOKS = Path(__file__).resolve().parent


def _load_post_gen():
    spec = importlib.util.spec_from_file_location("post_gen_project", HOOKS / "post_gen_project.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


post_gen = _load_post_gen()
ANSWERS_FILE = ".copier-answers.yml"  # copier.yml's _answers_file
# Answers copier records for the config repo: every question, not the derived values.
QUESTIONS = [
    key for key in json.loads((HOOKS.parent / "cookiecutter.json").read_text()) if key[0] != "_"
]


def copy_config_repo(answers: dict, clone: str, commit: str, recorded_src: str, target: Path):
    """Copy the config part from copier's clone of the template (the very commit the dev repo
    was made from, no second download), then record the template as the user named it."""
    from copier import run_copy

    run_copy(
        clone,
        target,
        data={**{key: answers[key] for key in QUESTIONS}, "template_part": "config"},
        vcs_ref=commit or None,
        defaults=True,
        quiet=True,
        skip_tasks=True,  # its first commit is made below, after the record is right
        unsafe=True,  # the same template the user trusted for the dev repo
    )
    answers_file = target / ANSWERS_FILE
    lines = answers_file.read_text().splitlines(keepends=True)
    answers_file.write_text(
        "".join(
            f"_src_path: {json.dumps(recorded_src)}\n" if line.startswith("_src_path:") else line
            for line in lines
        )
    )


def recorded_source(src: str) -> str:
    """A local template path as the dev repo's answers would need it from anywhere: absolute
    (copier records it as typed; the shell's working directory resolves it)."""
    if "://" in src or src.startswith(("git@", "gh:", "gl:")) or Path(src).is_absolute():
        return src  # a URL (or copier's GitHub/GitLab shorthand) or an absolute path
    return str((Path(os.environ.get("PWD", ".")) / src).resolve())


def main(argv: list[str]) -> int:
    answers, clone, commit, src = json.loads(argv[0]), argv[1], argv[2], argv[3]
    project = Path.cwd()
    if answers["__template_part"] == "config":
        post_gen.git_init_and_commit(project)
        return 0
    sibling = project.parent / answers["__config_repo_name"]
    created = False
    try:
        if answers["config_repo"] == "separate":
            created = True
            copy_config_repo(answers, clone, commit, recorded_source(src), sibling)
            post_gen.git_init_and_commit(sibling)
        post_gen.git_init_and_commit(project)
    except BaseException:
        if created and sibling.exists():
            shutil.rmtree(sibling)
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
