"""Fast tier: every supported combination renders the exact files, fully rendered and parseable;
every unsupported answer is refused with the hook's sentence and leaves nothing behind."""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from cookiecutter.exceptions import FailedHookException
from cookiecutter.main import cookiecutter

from .answers import answers
from .conftest import SUPPORTED, TEMPLATE, UNSUPPORTED, Rendered, render_into
from .hooks import post_gen

TEMPLATE_DIR = TEMPLATE / "{{cookiecutter.project_slug}}"
COOKIECUTTER_JSON = json.loads((TEMPLATE / "cookiecutter.json").read_text())
COPY_WITHOUT_RENDER = COOKIECUTTER_JSON["_copy_without_render"]
ANSWERS_FILE_NAMES = re.compile(r"\{\{cookiecutter\.__(config_)?answers\}\}$")
# Jinja left in a rendered file. `{{ $labels.x }}` (Prometheus alert templates) and
# `{{ .Values }}`-style Go templates are legitimate output, so only a `{{` followed by a
# letter or `cookiecutter` counts, plus any `{%` and any `cookiecutter.` reference.
COOKIECUTTER_REF = re.compile(r"cookiecutter\.")
UNRENDERED = re.compile(r"\{\{\s*(cookiecutter|[a-z_]+\s*(\||\}\}))|\{%|cookiecutter\.")


def tracked_files(repo: Path) -> set[str]:
    out = subprocess.run(["git", "ls-files"], cwd=repo, capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def template_files() -> list[str]:
    """The template dir's files as git sees them (tracked or new, never ignored caches)."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", TEMPLATE_DIR.name],
        cwd=TEMPLATE,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    prefix = TEMPLATE_DIR.name + "/"
    return [f.removeprefix(prefix) for f in out if (TEMPLATE / f).is_file()]


def expected_files(derived: dict) -> tuple[set[str], set[str]]:
    """(dev repo files, config repo files) the template should produce for these answers."""
    names = {
        "{{cookiecutter.project_slug}}": derived["project_slug"],
        "{{cookiecutter.package_name}}": derived["package_name"],
    }
    files = set()
    for rel in template_files():
        if ANSWERS_FILE_NAMES.search(rel):
            continue  # copier's answers files: their names render empty under cookiecutter
        for raw, value in names.items():
            rel = rel.replace(raw, value)
        files.add(rel)
    files -= set(post_gen.paths_to_prune(derived))
    config = {f.removeprefix("deploy/") for f in files if f.startswith("deploy/")}
    if derived["config_repo"] == "separate":
        files = {f for f in files if not f.startswith("deploy/")}
    return files, config


def text_files(root: Path):
    for path in root.rglob("*"):
        if ".git" in path.parts or not path.is_file():
            continue
        try:
            yield path, path.read_text()
        except UnicodeDecodeError:
            continue


def copied_verbatim(rel: str) -> bool:
    return any(fnmatch.fnmatch(rel, pattern) for pattern in COPY_WITHOUT_RENDER)


def test_exact_file_set_and_everything_committed(scenario: Rendered):
    dev_expected, config_expected = expected_files(scenario.answers)
    assert tracked_files(scenario.dev) == dev_expected
    if scenario.separate:
        assert tracked_files(scenario.config) == config_expected
        assert not (scenario.dev / "deploy").exists()
    else:
        assert not (scenario.dev.parent / scenario.answers["__config_repo_name"]).exists()
    for repo in {scenario.dev, scenario.config} if scenario.separate else {scenario.dev}:
        status = subprocess.run(
            ["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True
        )
        assert status.stdout == "", f"uncommitted or ignored template files in {repo}"


def test_no_unrendered_template_syntax(scenario: Rendered):
    # Paths as the template names them: the sibling config repo is the template's deploy/.
    roots = [(scenario.dev, "")] + ([(scenario.config, "deploy/")] if scenario.separate else [])
    for root, prefix in roots:
        for path, text in text_files(root):
            rel = prefix + path.relative_to(root).as_posix()
            # Files copied verbatim (the package's Python modules, dashboards) may contain
            # `{{` legitimately (f-strings, Grafana legends), but never a template variable.
            pattern = COOKIECUTTER_REF if copied_verbatim(rel) else UNRENDERED
            match = pattern.search(text)
            assert match is None, f"{path}: unrendered {match.group(0)!r}"


def test_every_config_file_parses(scenario: Rendered):
    roots = [scenario.dev] + ([scenario.config] if scenario.separate else [])
    parsed = 0
    for root in roots:
        for path, text in text_files(root):
            if path.suffix in {".yml", ".yaml"}:
                list(yaml.safe_load_all(text))
            elif path.suffix == ".toml":
                tomllib.loads(text)
            elif path.suffix in {".json", ".ipynb"} or path.name == ".cookiecutter.json":
                json.loads(text)
            else:
                continue
            parsed += 1
    assert parsed >= 3


def test_names_are_derived_and_answers_land(scenario: Rendered):
    a = scenario.answers
    pyproject = tomllib.loads((scenario.dev / "pyproject.toml").read_text())
    project = pyproject["project"]
    assert scenario.dev.name == a["project_slug"]
    assert project["name"] == a["project_slug"]
    assert project["authors"] == [{"name": a["author_name"], "email": a["author_email"]}]
    assert project["requires-python"] == f">={a['python_version']}"
    assert project["scripts"] == {a["project_slug"]: f"{a['package_name']}.cli:main"}
    assert (scenario.dev / "src" / a["package_name"] / "__init__.py").is_file()
    readme = (scenario.dev / "README.md").read_text()
    assert a["project_name"] in readme


def test_a_name_with_an_underscore_derives_a_dns_slug(render):
    """cookiecutter.json turns spaces and underscores into hyphens, and the tests' answers come
    from cookiecutter itself, so they agree (a hand-written derivation said ``my_model-x``)."""
    project = render("underscore-name", project_name="My_Model X")
    assert project.dev.name == project.answers["project_slug"] == "my-model-x"
    assert project.answers["package_name"] == "my_model_x"
    assert (project.dev / "src" / "my_model_x" / "cli.py").is_file()
    assert project.config == project.dev.parent / "my-model-x-config"
    siblings = sorted(p.name for p in project.dev.parent.iterdir())
    assert siblings == ["my-model-x", "my-model-x-config"]


def test_custom_answers_leave_no_default_behind(render):
    custom = render("custom-names", **SUPPORTED["custom-names"])
    defaults = answers()
    leaks = [
        defaults[key]
        for key in (
            "project_name",
            "project_slug",
            "package_name",
            "author_name",
            "author_email",
            "gitlab_namespace",
            "aws_region",
        )
    ]
    for root in (custom.dev,):
        for path, text in text_files(root):
            for value in leaks:
                assert value not in text, f"{path} hard-codes the default {value!r}"


@pytest.mark.parametrize("case", list(UNSUPPORTED), ids=list(UNSUPPORTED))
def test_unsupported_answers_are_refused_and_leave_nothing(case, tmp_path, capfd):
    context, message = UNSUPPORTED[case]
    with pytest.raises(FailedHookException):
        render_into(tmp_path / "out", **context)
    assert message in capfd.readouterr().err
    assert list((tmp_path / "out").iterdir()) == []


def test_refuses_to_overwrite_an_existing_config_repo(tmp_path, capfd):
    out = tmp_path / "out"
    (out / "transaction-classifier-config").mkdir(parents=True)
    (out / "transaction-classifier-config" / "mine.txt").write_text("keep me")
    with pytest.raises(FailedHookException):
        render_into(out)
    assert "already exists" in capfd.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["transaction-classifier-config"]
    assert (out / "transaction-classifier-config" / "mine.txt").read_text() == "keep me"


def test_cookiecutter_refuses_an_unknown_choice_before_any_hook(tmp_path, capfd):
    """Why the hook need not check choices given on the command line or as extra_context."""
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="oracle provided for choice variable data_source"):
        cookiecutter(
            str(TEMPLATE),
            no_input=True,
            extra_context={"data_source": "oracle"},
            output_dir=str(out),
            default_config=True,
        )
    assert "ERROR:" not in capfd.readouterr().err  # the pre-generation hook never ran
    assert not out.exists()


def test_a_replayed_choice_the_template_no_longer_offers_is_refused(tmp_path, capfd):
    """A replay file is not checked by cookiecutter: the hook refuses the stale choice."""
    replay = tmp_path / "older-template.json"
    replay.write_text(json.dumps({"cookiecutter": {**answers(), "data_source": "sqlite"}}))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(FailedHookException):
        cookiecutter(str(TEMPLATE), replay=str(replay), output_dir=str(out), default_config=True)
    assert "data_source 'sqlite' is not one of csv, postgres, mysql" in capfd.readouterr().err
    assert list(out.iterdir()) == []


RUFF = Path(sys.executable).parent / "ruff"  # the pin the generated dev group uses too


def test_generated_code_is_lint_clean(scenario: Rendered):
    """The dev repo's own `make lint` (ruff check + format --check) passes as rendered, for
    every combination: names and options change import order and line lengths."""
    for args in (["check", "."], ["format", "--check", "."]):
        proc = subprocess.run([RUFF, *args], cwd=scenario.dev, capture_output=True, text=True)
        assert proc.returncode == 0, f"ruff {' '.join(args)}:\n{proc.stdout}{proc.stderr}"


def test_make_render_works_from_the_template_root(tmp_path):
    """The README's first command, as typed: `make render` (cookiecutter given `.`)."""
    out = tmp_path / "out"
    proc = subprocess.run(
        ["make", "render", f"OUT={out}"], cwd=TEMPLATE, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (out / "transaction-classifier" / "dvc.yaml").is_file()
    assert (out / "transaction-classifier-config" / "k8s").is_dir()
