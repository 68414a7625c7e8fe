"""The dev repo's GitLab pipeline, for every scenario: schema-valid and well-formed, one pin per
tool, and an image build whose inputs all exist on the first pipeline (every file the Dockerfile
copies is committed by the README's first commit or comes from the artifacts of the jobs the build
job needs). Running the pipeline is tests/test_day_one.py's job."""

from __future__ import annotations

import fnmatch
import re
import shutil
import sys
from pathlib import Path

import yaml

from .conftest import Rendered, readme_bash_block, run

STAGES = ["lint", "test", "train", "report", "security", "build", "release"]
CHECK_JSONSCHEMA = (
    shutil.which("check-jsonschema", path=str(Path(sys.executable).parent)) or "check-jsonschema"
)
# Jobs defined by GitLab's templates; our file only overrides some of their keys.
TEMPLATE_JOBS = {
    "semgrep-sast",
    "secret_detection",
    "dependency-scanning",
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


def expand(value: str, variables: dict) -> str:
    """A value with the pipeline's global variables expanded, recursively, as the runner does."""
    for _ in range(10):
        expanded = re.sub(r"\$\{?(\w+)\}?", lambda m: str(variables[m[1]]), value)
        if expanded == value:
            return expanded
        value = expanded
    raise AssertionError(f"global variables refer to each other in a loop: {value}")


def first_commit_adds(readme: str) -> list[str]:
    """The paths the README's first commit adds to the rendered initial commit."""
    block = readme_bash_block(readme, "First commit")
    lines = [line.split() for line in block.splitlines() if line.startswith("git add ")]
    assert len(lines) == 1, "the first commit should have exactly one `git add` line"
    return lines[0][2:]


def dockerfile_copies(text: str) -> list[str]:
    """The sources of every COPY from the build context (a `COPY --from=<stage>` is internal)."""
    sources: list[str] = []
    for line in text.splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            words = [w for w in line.split()[1:] if not w.startswith("--")]
            sources += words[:-1]  # the last word is the destination
    return sources


def _glob_match(pattern: list[str], path: list[str]) -> bool:
    """Docker's path patterns: `*` within one segment, `**` across any number of them."""
    if not pattern:
        return not path
    if pattern[0] == "**":
        return any(_glob_match(pattern[1:], path[i:]) for i in range(len(path) + 1))
    return (
        bool(path)
        and fnmatch.fnmatchcase(path[0], pattern[0])
        and _glob_match(pattern[1:], path[1:])
    )


def dockerignore_admits(dockerignore: str, path: str) -> bool:
    """Whether a context path reaches the build: the last pattern matching it or one of its parent
    directories decides, `!` re-includes (Docker's rule)."""
    admitted = True
    parts = path.strip("/").split("/")
    for raw in dockerignore.splitlines():
        raw = raw.strip()
        if not raw or raw.startswith("#"):
            continue
        negate = raw.startswith("!")
        pattern = raw.lstrip("!").strip("/").split("/")
        if any(_glob_match(pattern, parts[:n]) for n in range(1, len(parts) + 1)):
            admitted = negate
    return admitted


def image_input_problems(project: Rendered, jobs: dict[str, dict]) -> list[str]:
    """Every file the Dockerfile copies must be committed after the README's first commit, or be
    an artifact of a job build-image needs (with artifacts), and pass .dockerignore."""
    readme = (project.dev / "README.md").read_text()
    committed = run(["git", "ls-files"], cwd=project.dev).split()
    added = first_commit_adds(readme)
    artifacts: list[str] = []
    for need in resolved("build-image", jobs, "needs"):
        need = {"job": need} if isinstance(need, str) else need
        if need.get("artifacts", True):
            artifacts += (resolved(need["job"], jobs, "artifacts") or {}).get("paths", [])

    def under(path: str, entries: list[str]) -> bool:
        return any(path == e.rstrip("/") or path.startswith(e.rstrip("/") + "/") for e in entries)

    dockerignore = (project.dev / ".dockerignore").read_text()
    problems = []
    for source in dockerfile_copies((project.dev / "Dockerfile").read_text()):
        path = source.rstrip("/")
        files = [f for f in committed if under(f, [path])] or [path]
        for f in files:
            if not (f in committed or under(f, added) or under(f, artifacts)):
                problems.append(f"{f}: neither committed nor an artifact of build-image's needs")
            elif not dockerignore_admits(dockerignore, f):
                problems.append(f"{f}: excluded by .dockerignore")
    return problems


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
        ref = expand(image, variables)
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


def test_every_file_the_image_copies_exists_on_the_first_pipeline(scenario: Rendered):
    _, jobs = merged(scenario)
    assert image_input_problems(scenario, jobs) == []
    # The build takes the model from the train job, which must hand over all three files.
    assert {"models/model.onnx", "models/features.json", "models/reference_profile.json"} <= set(
        dockerfile_copies((scenario.dev / "Dockerfile").read_text())
    )


def test_the_image_input_check_catches_a_missing_artifact(render):
    """The check is not a rubber stamp: the train artifacts as they were before (no reference
    profile) fail it, and so does a .dockerignore that drops the lock file."""
    project = render("default")
    _, jobs = merged(project)
    jobs["train"]["artifacts"]["paths"].remove("models/reference_profile.json")
    assert image_input_problems(project, jobs) == [
        "models/reference_profile.json: neither committed nor an artifact of build-image's needs"
    ]
    assert not dockerignore_admits("*\n!uv.lock\nuv.lock\n", "uv.lock")
    assert dockerignore_admits("*\n!src/\n**/__pycache__\n", "src/pkg/cli.py")
    assert not dockerignore_admits("*\n!src/\n**/__pycache__\n", "src/pkg/__pycache__/x.pyc")


def test_the_first_commit_adds_the_lock_files(scenario: Rendered):
    """The README's first commit is what makes the first pipeline pass: both lock files and the
    reports that dvc.lock describes (the template's tests run this very block)."""
    readme = (scenario.dev / "README.md").read_text()
    block = readme_bash_block(readme, "First commit")
    assert block.splitlines()[0] == "make setup && make repro"
    assert set(first_commit_adds(readme)) == {"uv.lock", "dvc.lock", "reports"}
    committed = run(["git", "ls-files"], cwd=scenario.dev).split()
    assert "uv.lock" not in committed and "dvc.lock" not in committed  # made by the first run


def test_uv_is_pinned_once(scenario: Rendered):
    """UV_VERSION in .gitlab-ci.yml is the only uv pin: the Python jobs' image uses it, and the
    image build gets it from scripts/build-image.sh (CI passes it in the environment; a developer's
    run reads it from .gitlab-ci.yml with the script's own sed expression, run here)."""
    root = yaml.safe_load((scenario.dev / ".gitlab-ci.yml").read_text())
    pin = root["variables"]["UV_VERSION"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", pin), pin
    assert "${UV_VERSION}" in root["variables"]["PYTHON_IMAGE"]
    dockerfile = (scenario.dev / "Dockerfile").read_text()
    assert re.search(r"^ARG UV_VERSION$", dockerfile, re.M), "the Dockerfile's ARG has no default"
    assert '"uv==${UV_VERSION}"' in dockerfile
    script = (scenario.dev / "scripts" / "build-image.sh").read_text()
    assert '--build-arg "UV_VERSION=$(uv_version)"' in script
    sed = re.search(r"pin=\$\((sed -n '[^']+' \.gitlab-ci\.yml)\)", script)
    assert sed, "build-image.sh no longer reads UV_VERSION from .gitlab-ci.yml"
    assert run(["bash", "-c", sed[1]], cwd=scenario.dev).strip() == pin
    # The config repo's retrain DaskJob runs this CI image too: its tag comes from the same
    # answer (__uv_version in cookiecutter.json), and test_config_repo checks the two agree.
    retrain = Path("deploy/k8s/components/retrain/daskjob.yaml")
    elsewhere = [
        str(p.relative_to(scenario.dev))
        for p in scenario.dev.rglob("*")
        if p.is_file() and ".git" not in p.parts and p.name != ".gitlab-ci.yml"
        and p.relative_to(scenario.dev) != retrain and pin in p.read_text(errors="ignore")
    ]  # fmt: skip
    assert not elsewhere, f"uv {pin} is pinned again in {elsewhere}"


def test_copies_of_a_pin_agree(scenario: Rendered):
    """pre-commit's hooks cannot read CI variables or pyproject.toml: where they install a tool
    the pipeline also pins, the two versions must be the same."""
    variables = yaml.safe_load((scenario.dev / ".gitlab-ci.yml").read_text())["variables"]
    hooks = yaml.safe_load((scenario.dev / ".pre-commit-config.yaml").read_text())
    pins = {}
    for repo in hooks["repos"]:
        for hook in repo["hooks"]:
            for dep in hook.get("additional_dependencies", []):
                name, _, version = dep.partition("==")
                assert pins.setdefault(name, version) == version, f"two pins of {name}"
    assert pins["bandit[toml]"] == variables["BANDIT_VERSION"]
    assert pins["detect-secrets"] == variables["DETECT_SECRETS_VERSION"]
    pyproject = (scenario.dev / "pyproject.toml").read_text()
    assert f'"ruff=={pins["ruff"]}"' in pyproject
