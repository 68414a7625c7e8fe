"""Fast tier: copier renders the same tree as cookiecutter, from the same questions and checks.

copier.yml and config/cookiecutter.json are generated from cookiecutter.json; copier's renders
of every supported combination equal cookiecutter's (both repos, apart from copier's answers
files); every answer the pre-generation hook refuses, copier refuses with the same sentence,
and nothing is left behind.
"""

from __future__ import annotations

import filecmp
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cookiecutter.main import cookiecutter
from copier import run_copy

from .answers import answers
from .conftest import SUPPORTED, TEMPLATE, UNSUPPORTED, Rendered
from .hooks import load_hook, post_gen
from .template_repo import copy_template, tree


def test_generated_files_agree_with_cookiecutter_json():
    proc = subprocess.run(
        [sys.executable, "hooks/sync_copier.py", "--check"],
        cwd=TEMPLATE,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr


def test_copier_asks_what_cookiecutter_asks():
    spec = json.loads((TEMPLATE / "cookiecutter.json").read_text())
    questions = {
        k: v
        for k, v in yaml.safe_load((TEMPLATE / "copier.yml").read_text()).items()
        if k[0] != "_"
    }
    assert list(questions) == ["template_part", *(k for k in spec if not k.startswith("_"))]
    for name, default in spec.items():
        if name.startswith("_"):
            continue
        if isinstance(default, list):
            assert list(questions[name]["choices"].values()) == default
            assert questions[name]["default"] == default[0]
        else:
            assert questions[name]["default"] == default.replace("cookiecutter.", "")


@pytest.fixture(scope="session")
def template_repo(tmp_path_factory, git_identity_env) -> Path:
    """The working tree as a committed repository: copier renders what git holds."""
    return copy_template(tmp_path_factory.mktemp("copier-template") / "template", git_identity_env)


def copier_render(template: Path, dst: Path, **data: str) -> None:
    run_copy(str(template), dst, data=data, defaults=True, unsafe=True, quiet=True)


def tracked(repo: Path) -> set[str]:
    out = subprocess.run(["git", "ls-files"], cwd=repo, capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def assert_same_repo(got: Path, want: Path) -> None:
    """The same committed files, byte for byte and mode for mode (other tests run tools in the
    cookiecutter renders, so their ignored caches are not compared)."""
    files = tracked(want)
    assert tracked(got) == files | {".copier-answers.yml"}
    differing = [rel for rel in files if not filecmp.cmp(got / rel, want / rel, shallow=False)]
    assert differing == [], f"copier and cookiecutter render these differently: {differing}"
    modes = [rel for rel in files if (got / rel).stat().st_mode != (want / rel).stat().st_mode]
    assert modes == [], f"file modes differ: {modes}"
    status = subprocess.run(["git", "status", "--porcelain"], cwd=got, capture_output=True)
    assert status.stdout == b""


def test_copier_renders_what_cookiecutter_renders(scenario: Rendered, template_repo, tmp_path):
    dst = tmp_path / scenario.answers["project_slug"]
    copier_render(template_repo, dst, **SUPPORTED[scenario.dev.parent.name])
    assert_same_repo(dst, scenario.dev)
    sibling = tmp_path / scenario.answers["__config_repo_name"]
    if scenario.separate:
        assert_same_repo(sibling, scenario.config)
        answers = yaml.safe_load((sibling / ".copier-answers.yml").read_text())
        assert answers["template_part"] == "config"
        assert answers["_src_path"] == str(template_repo)
    else:
        assert not sibling.exists()
    answers = yaml.safe_load((dst / ".copier-answers.yml").read_text())
    assert answers["template_part"] == "dev"


def test_the_config_template_renders_the_sibling_repo(scenario: Rendered, tmp_path):
    """cruft updates the config repo from config/: it must render what the dev render moved."""
    if not scenario.separate:
        pytest.skip("embedded: deploy/ is part of the dev repo and updates with it")
    out = Path(
        cookiecutter(
            str(TEMPLATE),
            directory="config",
            no_input=True,
            extra_context=SUPPORTED[scenario.dev.parent.name],
            output_dir=str(tmp_path),
            default_config=True,
        )
    )
    assert out.name == scenario.config.name
    mine, theirs = tree(out), tree(scenario.config)
    assert sorted(mine) == sorted(theirs)
    assert [r for r in theirs if not filecmp.cmp(mine[r], theirs[r], shallow=False)] == []


@pytest.mark.parametrize("case", list(UNSUPPORTED), ids=list(UNSUPPORTED))
def test_copier_refuses_what_the_hook_refuses(case, template_repo, tmp_path):
    context, message = UNSUPPORTED[case]
    with pytest.raises(ValueError, match=message):
        copier_render(template_repo, tmp_path / "out" / "x", **context)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_copier_refuses_to_overwrite_an_existing_config_repo(template_repo, tmp_path):
    existing = tmp_path / "transaction-classifier-config"
    existing.mkdir()
    (existing / "mine.txt").write_text("keep me")
    with pytest.raises(ValueError, match="already exists: move it away"):
        copier_render(template_repo, tmp_path / "transaction-classifier")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["transaction-classifier-config"]
    assert (existing / "mine.txt").read_text() == "keep me"


copier_tasks = load_hook("copier_tasks")


@pytest.mark.parametrize(
    "src",
    ["https://gitlab.example/ml/template.git", "git@gitlab.example:ml/template.git",
     "gh:ml/template", "/srv/templates/mlops"],
)  # fmt: skip
def test_the_config_repo_records_a_url_or_absolute_path_as_given(src):
    assert copier_tasks.recorded_source(src) == src


def test_the_config_repo_records_a_relative_template_path_absolute(tmp_path, monkeypatch):
    """copier records the dev repo's source as typed; the sibling's must work from anywhere."""
    monkeypatch.setenv("PWD", str(tmp_path))
    assert copier_tasks.recorded_source("templates/mlops") == str(tmp_path / "templates/mlops")


def test_cruft_renders_give_the_config_repo_its_own_record():
    from_cruft = {**answers(), "_template": "https://gl/t.git", "_commit": "abc123"}
    state = post_gen.config_cruft_state(from_cruft)
    assert (state["template"], state["commit"], state["directory"]) == (
        "https://gl/t.git",
        "abc123",
        "config",
    )
    assert state["context"]["cookiecutter"]["__template_part"] == "config"
    assert "_repo_dir" not in state["context"]["cookiecutter"]
    assert post_gen.config_cruft_state(answers()) is None  # plain cookiecutter records nothing
