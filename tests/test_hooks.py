"""Unit tests for the hooks: every validator, every rejection, the pruning table."""

from __future__ import annotations

import json
import subprocess

import pytest

from .answers import TEMPLATE, answers
from .hooks import post_gen, pre_gen

DEFAULT_ANSWERS = json.loads((TEMPLATE / "cookiecutter.json").read_text())
PROJECT_DIR = TEMPLATE / "{{cookiecutter.project_slug}}"


@pytest.mark.parametrize("slug", ["ab", "model-api", "m2", "a" * 40, "x-1-y"])
def test_slug_accepts_dns_labels(slug):
    assert pre_gen.check_slug(slug) is None


@pytest.mark.parametrize(
    "slug",
    [
        "A-model",
        "1model",
        "model-",
        "-model",
        "my--model",
        "my_model",
        "a" * 41,
        "",
        "a.b",
        "m",
        "model\n",
    ],
)
def test_slug_rejects_non_dns_labels(slug):
    message = pre_gen.check_slug(slug)
    assert message and "is not a DNS label" in message and repr(slug) in message


@pytest.mark.parametrize("name", ["model", "credit_risk", "m2_api"])
def test_package_accepts_identifiers(name):
    assert pre_gen.check_package(name) is None


@pytest.mark.parametrize(
    "name", ["my-model", "2model", "class", "Model", "café", "a b", "", "model\n"]
)
def test_package_rejects_non_identifiers(name):
    assert "is not an importable Python module name" in pre_gen.check_package(name)


@pytest.mark.parametrize("name", ["json", "typing", "os"])
def test_package_rejects_stdlib_shadowing(name):
    assert "shadows the standard library" in pre_gen.check_package(name)


@pytest.mark.parametrize("email", ["a@b.co", "first.last+ml@bank.example"])
def test_email_accepts(email):
    assert pre_gen.check_email(email) is None


@pytest.mark.parametrize("email", ["a@b", "a b@c.com", "@x.com", "nobody", "a@b.co\n"])
def test_email_rejects(email):
    assert "is not an e-mail address" in pre_gen.check_email(email)


@pytest.mark.parametrize("region", ["eu-west-1", "us-east-2", "ap-southeast-3", "us-gov-west-1"])
def test_region_accepts(region):
    assert pre_gen.check_aws_region(region) is None


@pytest.mark.parametrize("region", ["europe", "EU-WEST-1", "eu-west", "eu-west-1a", "eu-west-1\n"])
def test_region_rejects(region):
    assert "is not an AWS region name" in pre_gen.check_aws_region(region)


@pytest.mark.parametrize("host", ["gitlab.com", "gitlab.bank.example", "git-lab.internal.corp"])
def test_gitlab_host_accepts(host):
    assert pre_gen.check_gitlab_host(host) is None


@pytest.mark.parametrize(
    "host", ["https://gitlab.com", "gitlab.com/group", "localhost", "Git Lab.com", "gitlab.com\n"]
)
def test_gitlab_host_rejects(host):
    assert "is not a host name" in pre_gen.check_gitlab_host(host)


@pytest.mark.parametrize("namespace", ["ml-team", "acme/ml-team", "Risk.Models/sub_group"])
def test_gitlab_namespace_accepts(namespace):
    assert pre_gen.check_gitlab_namespace(namespace) is None


@pytest.mark.parametrize(
    "namespace", ["ml team", "/ml", "ml/", "ml//team", "group.git", "", "ml-team\n"]
)
def test_gitlab_namespace_rejects(namespace):
    assert "is not a GitLab group path" in pre_gen.check_gitlab_namespace(namespace)


def test_project_name_rejects_blank_and_quotes():
    assert "project_name is empty" in pre_gen.check_project_name("   ")
    assert "contains a quote" in pre_gen.check_project_name('My "Model"')
    assert pre_gen.check_project_name("Credit Risk (v2)") is None


def test_choices_are_read_from_the_templates_cookiecutter_json():
    choices = pre_gen.template_choices(TEMPLATE / "cookiecutter.json")
    assert set(choices) == {
        "python_version",
        "data_source",
        "model_family",
        "dvc_remote",
        "config_repo",
    }
    assert choices["data_source"] == ["csv", "postgres", "mysql"]
    assert pre_gen.check_choice("data_source", "mysql", choices["data_source"]) is None


def test_validate_refuses_a_choice_the_template_no_longer_offers(tmp_path):
    """Only a replay file can bring one (cookiecutter checks every other path itself)."""
    replayed = {**answers(), "data_source": "sqlite"}
    assert pre_gen.validate(replayed, tmp_path) == [
        "data_source 'sqlite' is not one of csv, postgres, mysql: a replay file from another "
        "template version may hold it, so render again without --replay."
    ]


def test_validate_under_cruft_which_sets_no_repo_dir(tmp_path):
    """cruft renders without `_repo_dir`, after cookiecutter has checked the choices."""
    from_cruft = {k: v for k, v in answers().items() if k != "_repo_dir"}
    assert pre_gen.validate(from_cruft, tmp_path) == []
    assert len(pre_gen.validate({**from_cruft, "project_slug": "Bad_Slug"}, tmp_path)) == 1


def test_validate_reports_every_problem_at_once(tmp_path):
    # The package name is derived from the bad slug, so it is reported too.
    bad = answers(project_slug="Bad", author_email="nope", aws_region="mars")
    problems = pre_gen.validate(bad, tmp_path)
    assert [p.split()[0] for p in problems] == [
        "project_slug",
        "package_name",
        "author_email",
        "aws_region",
    ]
    assert pre_gen.validate(answers(), tmp_path) == []


def test_validate_refuses_to_overwrite_an_existing_config_repo(tmp_path):
    (tmp_path / "transaction-classifier-config").mkdir()
    problems = pre_gen.validate(answers(), tmp_path)
    assert problems == [
        f"{tmp_path / 'transaction-classifier-config'} already exists: "
        "move it away or choose config_repo=embedded."
    ]
    assert pre_gen.validate(answers(config_repo="embedded"), tmp_path) == []


def test_every_pruned_path_exists_in_the_template():
    for option, values, paths in post_gen.PRUNE_RULES:
        assert values <= set(DEFAULT_ANSWERS[option]), f"{option}: unknown values {values}"
        for rel in paths:
            assert (PROJECT_DIR / rel).exists(), f"PRUNE_RULES names a missing file: {rel}"


SQL_SUPPORT = "tests/sql_source_support.py"
POSTGRES = {"ci/services-postgres.gitlab-ci.yml", "tests/integration/test_sql_source_postgres.py"}
MYSQL = {"ci/services-mysql.gitlab-ci.yml", "tests/integration/test_sql_source_mysql.py"}
S3_TESTS = {
    "tests/s3_support.py",
    "tests/integration/test_dvc_s3_remote.py",
    "tests/integration/test_parquet_s3.py",
}


@pytest.mark.parametrize(
    ("answers_", "pruned"),
    [
        ({}, {SQL_SUPPORT, *POSTGRES, *MYSQL, *S3_TESTS}),
        ({"data_source": "postgres"}, {*MYSQL, *S3_TESTS}),
        ({"data_source": "mysql", "dvc_remote": "s3"}, POSTGRES),
        ({"dvc_remote": "s3"}, {SQL_SUPPORT, *POSTGRES, *MYSQL}),
    ],
)
def test_prune_keeps_only_the_chosen_options_files(answers_, pruned):
    assert set(post_gen.paths_to_prune(answers(**answers_))) == pruned


def test_options_pick_ci_and_test_files_through_the_table_not_jinja():
    """The data source decides which CI service files and tests exist (PRUNE_RULES), never an
    `{% if %}` inside them; the generated tests are Python without Jinja control flow."""
    branching = [
        str(path.relative_to(PROJECT_DIR))
        for path in [*PROJECT_DIR.glob("ci/*.yml"), PROJECT_DIR / ".gitlab-ci.yml"]
        if "cookiecutter.data_source" in path.read_text()
    ] + [
        str(path.relative_to(PROJECT_DIR))
        for path in PROJECT_DIR.glob("tests/**/*.py")
        if "{%" in path.read_text()
    ]
    assert branching == []


def test_prune_fails_loudly_on_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        post_gen.prune(tmp_path, ["not/there.py"])


def test_prune_removes_files_and_directories(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f.txt").write_text("x")
    (tmp_path / "g.txt").write_text("y")
    post_gen.prune(tmp_path, ["d", "g.txt"])
    assert list(tmp_path.iterdir()) == []


def test_place_config_repo_moves_deploy_only_when_separate(tmp_path):
    project = tmp_path / "m"
    (project / "deploy").mkdir(parents=True)
    assert (
        post_gen.place_config_repo(project, answers(config_repo="embedded", project_slug="m"))
        is None
    )
    assert (project / "deploy").is_dir()
    sibling = post_gen.place_config_repo(project, answers(config_repo="separate", project_slug="m"))
    assert sibling == tmp_path / "m-config" and sibling.is_dir()
    assert not (project / "deploy").exists()


def test_git_init_commits_everything_without_a_global_identity(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.gitconfig
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for key in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(key, raising=False)
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a.txt").write_text("a")
    post_gen.git_init_and_commit(repo)
    log = subprocess.run(
        ["git", "log", "--format=%an|%s"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert log == f"mlops template|{post_gen.INITIAL_COMMIT}"
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True
    )
    assert status.stdout == ""
