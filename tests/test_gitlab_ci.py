"""The dev repo's GitLab pipeline: schema-valid and well-formed for every scenario (fast), and
its offline-capable jobs really run under gitlab-ci-local on a rendered project (slow)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import Rendered, run

STAGES = ["lint", "test", "train", "report", "security", "build", "release"]
GITLAB_CI_LOCAL = os.environ.get("GITLAB_CI_LOCAL", "gitlab-ci-local")
CHECK_JSONSCHEMA = (
    shutil.which("check-jsonschema", path=str(Path(sys.executable).parent)) or "check-jsonschema"
)
# Jobs defined by GitLab's templates; our file only overrides some of their keys.
TEMPLATE_JOBS = {
    "semgrep-sast",
    "secret_detection",
    "gemnasium-python-dependency_scanning",
    "container_scanning",
}
JOB_KEYWORDS_NOT_JOBS = {
    "stages", "variables", "default", "include", "workflow",
    "image", "services", "cache", "before_script", "after_script",
}  # fmt: skip


def included(project: Rendered, item: dict) -> bool:
    """Whether GitLab includes this local file: `rules: exists` includes only a file the
    template kept (the database services); every other local include must exist."""
    exists = [rule["exists"] for rule in item.get("rules", []) if "exists" in rule]
    if exists:
        assert exists == [[item["local"]]], f"an include's exists rule names another file: {item}"
        return (project.dev / item["local"]).is_file()
    return True


def ci_files(project: Rendered) -> list[Path]:
    root = yaml.safe_load((project.dev / ".gitlab-ci.yml").read_text())
    locals_ = [i["local"] for i in root["include"] if "local" in i and included(project, i)]
    files = [project.dev / ".gitlab-ci.yml", *(project.dev / p.lstrip("/") for p in locals_)]
    missing = [str(f) for f in files if not f.is_file()]
    assert not missing, f"included files missing: {missing}"
    return files


def merged(project: Rendered) -> tuple[dict, dict[str, dict]]:
    """(the root file, every job and hidden job of all local files)."""
    root = yaml.safe_load((project.dev / ".gitlab-ci.yml").read_text())
    jobs: dict[str, dict] = {}
    for path in ci_files(project):
        for name, body in yaml.safe_load(path.read_text()).items():
            if name not in JOB_KEYWORDS_NOT_JOBS and isinstance(body, dict):
                jobs.setdefault(name, {}).update(body)
    return root, jobs


def resolved(name: str, jobs: dict[str, dict], key: str):
    """A job's key through its `extends:` chain (own value first), like GitLab resolves it."""
    body = jobs[name]
    if key in body:
        return body[key]
    parents = body.get("extends", [])
    for parent in reversed([parents] if isinstance(parents, str) else parents):
        if parent in jobs:
            value = resolved(parent, jobs, key)
            if value is not None:
                return value
    return None


def job_variables(name: str, jobs: dict[str, dict]) -> dict:
    """A job's variables merged through its `extends:` chain (own values win), as GitLab does."""
    body = jobs[name]
    parents = body.get("extends", [])
    merged_vars: dict = {}
    for parent in [parents] if isinstance(parents, str) else parents:
        if parent in jobs:
            merged_vars.update(job_variables(parent, jobs))
    return {**merged_vars, **body.get("variables", {})}


def test_schema_valid(scenario: Rendered):
    run(
        [CHECK_JSONSCHEMA, "--builtin-schema", "vendor.gitlab-ci", *map(str, ci_files(scenario))],
        cwd=scenario.dev,
    )


def test_pipeline_semantics(scenario: Rendered):
    root, jobs = merged(scenario)
    assert root["stages"] == STAGES
    assert root["default"]["interruptible"] is True and root["default"]["timeout"]
    variables = root["variables"]
    real = {n: b for n, b in jobs.items() if not n.startswith(".") and n not in TEMPLATE_JOBS}
    for path in ci_files(scenario):
        text = path.read_text()
        assert not re.search(r"^\s+(only|except):", text, re.M), f"{path.name} uses only/except"
    for name in real:
        assert resolved(name, jobs, "stage") in STAGES, name
        assert resolved(name, jobs, "rules") is not None, f"{name} has no rules"
        assert resolved(name, jobs, "script"), name
    # Jobs that publish must never be cancelled half-way.
    for name in ("retrain", "release-staging", "release-prod"):
        assert resolved(name, jobs, "interruptible") is False, name
    assert resolved("release-prod", jobs, "rules")[0]["when"] == "manual"
    # Every image pinned to an exact tag (variables resolved), never `latest`.
    images = [root["default"]["image"]] + [
        i["name"] if isinstance(i, dict) else i for n in real if (i := resolved(n, jobs, "image"))
    ]
    for name in real:
        services = resolved(name, jobs, "services") or []
        images += [s["name"] if isinstance(s, dict) else s for s in services]
    for image in images:
        ref = re.sub(r"\$\{?(\w+)\}?", lambda m: str(variables[m[1]]), image)
        repo, _, tag = ref.rpartition(":")
        assert repo and "/" not in tag and tag and tag != "latest", f"unpinned image {ref}"
    # Test job: JUnit + Cobertura reports; databases as services for SQL sources.
    reports = resolved("test", jobs, "artifacts")["reports"]
    assert reports["junit"] == "report.xml"
    assert reports["coverage_report"] == {"coverage_format": "cobertura", "path": "coverage.xml"}
    # The test job and the training jobs (through .dvc) get the data source's server.
    source = scenario.answers["data_source"]
    engine = {
        "postgres": ("postgres:", "postgresql+psycopg://"),
        "mysql": ("mysql:", "mysql+pymysql://"),
    }
    for job, url_variable in (
        ("test", "TEST_DATABASE_URL"),
        ("train", "CI_DATA_URL"),
        ("retrain", "CI_DATA_URL"),
    ):
        services = resolved(job, jobs, "services")
        job_vars = job_variables(job, jobs)
        if source == "csv":
            assert services is None and url_variable not in job_vars, job
        else:
            image, url = engine[source]
            assert [s["name"].split(":")[0] + ":" for s in services] == [image], job
            assert [s["alias"] for s in services] == ["db"], job
            assert job_vars[url_variable].startswith(url) and "@db:" in job_vars[url_variable]
    # The seeding step runs only where a services file set CI_DATA_URL.
    seeding = [c for c in resolved("train", jobs, "before_script") if "seed-db" in c]
    assert len(seeding) == 1 and '[ -n "${CI_DATA_URL:-}" ]' in seeding[0]
    # Retrain runs only for schedule/trigger/API pipelines with RETRAIN=true.
    retrain_if = jobs["retrain"]["rules"][0]["if"]
    assert '$RETRAIN == "true"' in retrain_if and "schedule|trigger|api" in retrain_if
    # GitLab templates only in the file tests can switch off.
    for path in ci_files(scenario):
        if "template:" in path.read_text():
            assert path.name == "gitlab-scanners.gitlab-ci.yml"
    overlays = "k8s/overlays" if scenario.separate else "deploy/k8s/overlays"
    assert variables["CONFIG_OVERLAYS_DIR"] == overlays
    # Every global variable is documented for the team.
    doc = (scenario.dev / "docs" / "ci.md").read_text()
    undocumented = [v for v in variables if f"`{v}`" not in doc]
    assert not undocumented, f"variables missing from docs/ci.md: {undocumented}"
    for secret in ("REPO_TOKEN", "GITLAB_TOKEN", "CI_REGISTRY_PASSWORD"):
        assert f"`{secret}`" in doc


# ---------------------------------------------------------------- slow: gitlab-ci-local

OFFLINE_MR_JOBS = ["ruff", "pre-commit", "test", "train", "promotion-gate", "report",
                   "bandit", "detect-secrets", "trivy-fs"]  # fmt: skip
DOCKERFILE_JOBS = ["hadolint", "checkov"]


def gcl_command(env: dict[str, str], *args: str) -> list[str]:
    return [
        GITLAB_CI_LOCAL,
        "--force-shell-executor",
        "--shell-isolation",
        "--variable", "GITLAB_SECURITY_TEMPLATES=false",
        "--variable", f"UV_CACHE_DIR={env['UV_CACHE_DIR']}",
        # The pipeline copies packages out of its per-project cache (UV_LINK_MODE=copy, as a
        # GitLab cache lives apart from the venv); here every job shares one cache on the same
        # disk, so hard links give the same venv without copying ~1 GB per job.
        "--variable", "UV_LINK_MODE=hardlink",
        "--variable", f"PRE_COMMIT_HOME={env['PRE_COMMIT_HOME']}",
        *args,
    ]  # fmt: skip


def gcl(project: Path, env: dict[str, str], *args: str, timeout: int = 1800) -> str:
    return run(gcl_command(env, *args), cwd=project, env=env, timeout=timeout)


@pytest.mark.slow
def test_pipeline_jobs_run_under_gitlab_ci_local(render, git_identity_env, tmp_path_factory):
    if shutil.which(GITLAB_CI_LOCAL) is None or shutil.which("rsync") is None:
        pytest.fail("needs gitlab-ci-local (npm gitlab-ci-local@4.73.0) and rsync on PATH")
    project = render("gitlab-ci-local").dev
    scratch = tmp_path_factory.mktemp("gcl")
    env = {
        **git_identity_env,
        "UV_CACHE_DIR": os.environ.get("UV_CACHE_DIR", str(scratch / "uv-cache")),
        "PRE_COMMIT_HOME": str(scratch / "pre-commit"),
        "GCL_IGNORE_PREDEFINED_VARS": "CI_PIPELINE_SOURCE",
    }

    def git(*args: str) -> str:
        return run(["git", *args], cwd=project, env=env)

    run(["uv", "lock", "--quiet"], cwd=project, env=env)
    git("add", "uv.lock")
    git("commit", "-qm", "Lock dependencies")
    git("remote", "add", "origin", "https://gitlab.example.com/ml-team/transaction-classifier.git")
    git("update-ref", "refs/remotes/origin/main", "main")
    git("symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/main")
    mr = ["--variable", "CI_PIPELINE_SOURCE=merge_request_event"]

    # 1. A merge request trains the first model; its dvc.lock and reports are committed to main.
    git("checkout", "-qb", "first-model")
    gcl(project, env, *mr, "train")
    git("add", "dvc.lock", "reports")
    git("commit", "-qm", "First model")
    git("checkout", "-q", "main")
    git("merge", "-q", "--ff-only", "first-model")
    git("update-ref", "refs/remotes/origin/main", "main")

    # 2. On main, with no cache, the train job reproduces exactly the committed dvc.lock.
    shutil.rmtree(project / ".gitlab-ci-local", ignore_errors=True)
    out = gcl(project, env, "train")
    assert "PASS" in out and "train" in out
    assert git("status", "--porcelain", "--", "dvc.lock", "reports") == ""

    # 3. A merge request that changes a parameter: the offline jobs pass and report on it.
    git("checkout", "-qb", "smaller-c")
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("    C: 1.0\n", "    C: 0.05\n", 1))
    git("commit", "-qam", "Try C=0.05")
    jobs = OFFLINE_MR_JOBS + (DOCKERFILE_JOBS if (project / "Dockerfile").is_file() else [])
    # The test job runs as defined (sync, pytest with coverage and JUnit artifacts) on the unit
    # tier only: the project's whole suite already runs in test_generated_project.py.
    unit_only = ["--variable", "PYTEST_ADDOPTS=tests/unit"]
    gcl(project, env, *mr, "--variable", "REPORT_BASE_REV=main", *unit_only, *jobs)

    report = (project / "ci-report" / "report.md").read_text()
    assert "Promotion gate: passed" in report
    assert re.search(
        r"\| params\.yaml \| train\.logistic_regression\.C +\| 1\.0 +\| 0\.05 ", report
    )
    assert re.search(r"\| reports/metrics\.json \| roc_auc ", report)
    assert "| group_a |" in report and "largest gap" in report
    pngs = sorted((project / "ci-report" / "plots").glob("*.png"))
    assert {p.stem for p in pngs} >= {"roc", "precision_recall", "calibration", "confusion"}
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
        assert f"(plots/{png.name})" in report
    assert (project / "report.xml").is_file() and (project / "coverage.xml").is_file()

    # 4. The promotion gate fails a clearly worse candidate.
    # One solver iteration: ROC AUC drops by about 0.04, far beyond gate.tolerance.
    params.write_text(params.read_text().replace("    max_iter: 1000\n", "    max_iter: 1\n", 1))
    git("commit", "-qam", "Cripple the model")
    proc = subprocess.run(
        gcl_command(env, *mr, "--variable", "REPORT_BASE_REV=main", "train", "promotion-gate"),
        cwd=project, env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert proc.returncode != 0, proc.stdout[-3000:]
    assert "promotion gate FAILED against main" in proc.stdout
