"""Kubernetes: render every overlay, validate every object against a schema, the project's rules.

Who checks what on the rendered output (build/rendered/):
  schema   built-in kinds: `kubernetes-validate --strict` (Kubernetes' own OpenAPI schemas);
           custom resources: `check-jsonschema` with schemas/<kind>.json, which add this
           repository's requirements to the CRD schemas vendored in schemas/crds/
  checkov  pod security, requests and limits, image tags, probes (built-in checks) and the
           custom checks in policies/checkov/; trivy repeats most pod security rules
           (policies/README.md maps each rule to the check IDs)
  policy   below: the rules that relate several fields or objects, which neither scanner can
           express (a checkov YAML policy compares one attribute with a value)

A DaskJob's pods are checked as the Pod and Deployments the Dask operator makes of them
(dask_pods.py), which the render check writes beside each overlay's render.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import dask_pods
from common import (
    BUILD,
    OVERLAYS,
    RENDERED,
    ROOT,
    SCHEMAS,
    CheckFailed,
    dig,
    load_all,
    overlays,
    rendered,
    run,
    shown,
    tool,
    write_all,
)

K8S_VERSION = "1.33.0"
MIN_PROD_REPLICAS = 3
DRAIN_SECONDS = 10  # the service finishes in-flight requests within this after SIGTERM
BUILTIN_DIR = BUILD / "builtin"
CUSTOM_DIR = BUILD / "custom-resources"


def check_render() -> str:
    kubectl = tool("kubectl")
    RENDERED.mkdir(parents=True, exist_ok=True)
    for old in RENDERED.glob("*.yaml"):
        old.unlink()
    targets = {env: OVERLAYS / env for env in overlays()} | {"argocd": ROOT / "argocd"}
    operator_made = []
    for name, path in targets.items():
        (RENDERED / f"{name}.yaml").write_text(run([kubectl, "kustomize", str(path)]))
        made = dask_pods.for_render(load_all(RENDERED / f"{name}.yaml"))
        if made:
            write_all(RENDERED / f"{name}{dask_pods.SUFFIX}.yaml", made)
            operator_made.append(name)
    also = f"; the Dask operator's pods of {', '.join(operator_made)}" if operator_made else ""
    return f"rendered {', '.join(targets)}{also}"


def custom_resource_schemas() -> dict[str, Path]:
    """Lower-case kind → schemas/<kind>.json, the schema every object of that kind must meet."""
    return {path.stem: path for path in sorted(SCHEMAS.glob("*.json"))}


def _fresh(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)


def _run_quietly(cmd: list[str]) -> subprocess.CompletedProcess:
    """A validator whose report is the message: the caller decides what failed."""
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)  # noqa: S603


def _split_by_schema(schemas: dict[str, Path]) -> tuple[list[Path], dict[str, list[Path]]]:
    """Write the rendered objects out for their validator: built-in kinds per render file,
    custom resources one file per object (check-jsonschema's messages name the file)."""
    _fresh(BUILTIN_DIR)
    _fresh(CUSTOM_DIR)
    builtin_files: list[Path] = []
    instances: dict[str, list[Path]] = {}
    for path in sorted(RENDERED.glob("*.yaml")):
        builtin = []
        for doc in load_all(path):
            kind = doc.get("kind", "")
            if kind.lower() not in schemas:
                builtin.append(doc)
                continue
            out = CUSTOM_DIR / path.stem / f"{kind}-{dig(doc, 'metadata.name')}.json"
            out.parent.mkdir(exist_ok=True)
            out.write_text(json.dumps(doc, indent=1))
            instances.setdefault(kind, []).append(out.relative_to(ROOT))
        if builtin:
            out = BUILTIN_DIR / path.name
            write_all(out, builtin)
            builtin_files.append(out.relative_to(ROOT))
    return builtin_files, instances


def _kubernetes_validate(files: list[Path]) -> list[str]:
    proc = _run_quietly(
        [tool("kubernetes-validate"), "--strict", "-k", K8S_VERSION, "--quiet", *map(str, files)]
    )
    lines = (proc.stdout + proc.stderr).splitlines()
    # kubernetes-validate only warns about a kind it has no schema for; here that is an error,
    # or an object of a new kind would pass unchecked.
    unknown = [line for line in lines if "Couldn't find schema" in line]
    problems = []
    if proc.returncode != 0:
        errors = [line for line in lines if line not in unknown]
        problems += errors or [f"kubernetes-validate exited {proc.returncode} without a report"]
    if unknown:
        problems.append(
            "no schema for these kinds: vendor their CRD schema into schemas/ "
            "(see schemas/README.md)"
        )
        problems += unknown
    return problems


def _check_jsonschema(schemas: dict[str, Path], instances: dict[str, list[Path]]) -> list[str]:
    """One check-jsonschema run for every kind: a schema that sends each object, by its kind,
    to schemas/<kind>.json (one process instead of one per kind)."""
    if not instances:
        return []
    by_kind = CUSTOM_DIR / "by-kind.schema.json"
    by_kind.write_text(
        json.dumps(
            {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "$comment": "Written by scripts/kubernetes_checks.py: each kind to its schema.",
                "allOf": [
                    {
                        "if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]},
                        "then": {"$ref": schemas[kind.lower()].as_uri()},
                    }
                    for kind in sorted(instances)
                ],
            },
            indent=1,
        )
    )
    files = [str(f) for kind in sorted(instances) for f in instances[kind]]
    schema = str(by_kind.relative_to(ROOT))
    proc = _run_quietly([tool("check-jsonschema"), "--schemafile", schema, *files])
    if proc.returncode == 0:
        return []
    used = ", ".join(f"{kind}: {shown(schemas[kind.lower()])}" for kind in sorted(instances))
    return [f"custom resources do not match their schemas ({used}):\n{proc.stdout}{proc.stderr}"]


def check_schema() -> str:
    schemas = custom_resource_schemas()
    builtin_files, instances = _split_by_schema(schemas)
    problems = _kubernetes_validate(builtin_files) + _check_jsonschema(schemas, instances)
    if problems:
        raise CheckFailed("\n".join(problems))
    builtin_count = sum(len(load_all(ROOT / f)) for f in builtin_files)
    custom_count = sum(len(f) for f in instances.values())
    return (
        f"{builtin_count} objects valid against Kubernetes {K8S_VERSION} (strict); "
        f"{custom_count} custom resources ({', '.join(sorted(instances))}) valid against "
        f"the CRD schemas in schemas/"
    )


# --------------------------------------------------------------------------------------------
# policy: one function per rule family, each returning its problems


def _namespace(env: str, docs: list[dict]) -> tuple[str | None, list[str]]:
    namespaces = [d for d in docs if d["kind"] == "Namespace"]
    if len(namespaces) != 1:
        return None, [f"{env}: expected one Namespace, got {len(namespaces)}"]
    name = namespaces[0]["metadata"]["name"]
    stray = [
        d["metadata"]["name"]
        for d in docs
        if d["kind"] != "Namespace" and d["metadata"].get("namespace") != name
    ]
    return name, [f"{env}: objects outside namespace {name}: {stray}"] if stray else []


def _graceful_shutdown(env: str, docs: list[dict]) -> list[str]:
    """preStop sleep + drain must end before the kubelet's SIGKILL (two fields: no scanner)."""
    problems = []
    for d in docs:
        if d["kind"] != "Deployment":
            continue
        spec = d["spec"]["template"]["spec"]
        grace = spec.get("terminationGracePeriodSeconds", 30)
        for c in spec["containers"]:
            pre = dig(c, "lifecycle.preStop.sleep.seconds") or 0
            if not pre or grace <= pre + DRAIN_SECONDS:
                problems.append(
                    f"{env}: Deployment/{d['metadata']['name']}: needs a preStop sleep and a "
                    f"grace period longer than it plus the {DRAIN_SECONDS} s drain"
                )
    return problems


def _exposure(env: str, docs: list[dict]) -> list[str]:
    """Metrics stay off the public Service; the Ingress reaches only public Services."""
    problems = []
    services = [d for d in docs if d["kind"] == "Service"]
    public = {
        s["metadata"]["name"] for s in services if not s["metadata"]["name"].endswith("-metrics")
    }
    for svc in services:
        if svc["metadata"]["name"] in public and 9000 in {p["port"] for p in svc["spec"]["ports"]}:
            problems.append(f"{env}: metrics port on the public Service {svc['metadata']['name']}")
    for ing in (d for d in docs if d["kind"] == "Ingress"):
        rule_hosts = {rule.get("host") for rule in ing["spec"]["rules"]}
        tls_hosts = {h for t in ing["spec"].get("tls", []) for h in t.get("hosts", [])}
        if rule_hosts - tls_hosts:
            problems.append(
                f"{env}: Ingress/{ing['metadata']['name']}: hosts {sorted(rule_hosts - tls_hosts)} "
                "have no TLS certificate (keep `host` and `tls.hosts` equal in the overlay's "
                "ingress patch)"
            )
        for rule in ing["spec"]["rules"]:
            for p in rule["http"]["paths"]:
                if p["backend"]["service"]["name"] not in public:
                    problems.append(f"{env}: Ingress routes to {p['backend']['service']['name']}")
    return problems


def _availability(env: str, docs: list[dict]) -> list[str]:
    hpas = [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]
    if len(hpas) != 1 or not any(d["kind"] == "PodDisruptionBudget" for d in docs):
        return [f"{env}: needs one HorizontalPodAutoscaler and a PodDisruptionBudget"]
    floor = hpas[0]["spec"]["minReplicas"]
    if env == "prod" and floor < MIN_PROD_REPLICAS:
        return [f"prod: HPA minReplicas {floor} < {MIN_PROD_REPLICAS}"]
    return []


def _default_deny(env: str, docs: list[dict]) -> list[str]:
    denies = [
        p
        for p in docs
        if p["kind"] == "NetworkPolicy"
        and p["spec"]["podSelector"] == {}
        and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    return [] if denies else [f"{env}: no default-deny NetworkPolicy"]


def _own_secrets(env: str, docs: list[dict]) -> list[str]:
    return [
        f"{env}: ExternalSecret/{es['metadata']['name']} reads {item['remoteRef']['key']}, "
        f"not an entry of {env}"
        for es in docs
        if es["kind"] == "ExternalSecret"
        for item in es["spec"]["data"]
        if f"/{env}/" not in item["remoteRef"]["key"]
    ]


def _release_line(env: str) -> list[str]:
    kustomization = (OVERLAYS / env / "kustomization.yaml").read_text()
    if len(re.findall(r"^\s+newTag: \S+$", kustomization, re.M)) != 1:
        return [
            f"{env}: kustomization.yaml needs exactly one `newTag:` line (the release job edits it)"
        ]
    return []


def _argocd_application(env: str, namespace: str, app: dict | None) -> list[str]:
    if app is None:
        return [f"{env}: no Argo CD Application named after namespace"]
    problems = []
    src, dest = app["spec"]["source"], app["spec"]["destination"]
    if not src["path"].endswith(f"k8s/overlays/{env}"):
        problems.append(f"{env}: Application path {src['path']}")
    # The path inside this repository: the config repo root, or deploy/ inside the dev repo.
    repo_root = ROOT.parent if src["path"].startswith("deploy/") else ROOT
    if not (repo_root / src["path"] / "kustomization.yaml").exists():
        problems.append(f"{env}: Application path {src['path']} does not exist in this repository")
    if dest["namespace"] != namespace:
        problems.append(f"{env}: Application deploys to {dest['namespace']}")
    automated = dig(app, "spec.syncPolicy.automated")
    if env == "prod" and automated is not None:
        problems.append("prod: Application must sync manually")
    if env != "prod" and not (automated and automated.get("prune") and automated.get("selfHeal")):
        problems.append(f"{env}: Application needs automated sync with prune and selfHeal")
    return problems


def _project_allows(env: str, docs: list[dict], project: dict | None) -> list[str]:
    if project is None:
        return [f"{env}: its Argo CD Application names no AppProject of argocd/"]
    allowed = {
        (w["group"], w["kind"])
        for w in project["spec"].get("namespaceResourceWhitelist", [])
        + project["spec"].get("clusterResourceWhitelist", [])
    }
    missing = sorted({(d["apiVersion"].rpartition("/")[0], d["kind"]) for d in docs} - allowed)
    return [
        f"{env}: the AppProject {project['metadata']['name']} does not allow {kind} "
        f"({group or 'core'})"
        for group, kind in missing
    ]


def _addon_application(app: dict, projects: dict[str, dict]) -> list[str]:
    """A Helm chart add-on: an exact chart version, and a project that allows its source and
    destination (Argo CD would refuse the sync otherwise, on the cluster, much later)."""
    name, src, dest = app["metadata"]["name"], app["spec"]["source"], app["spec"]["destination"]
    problems = []
    if not re.fullmatch(r"\d+\.\d+\.\d+", str(src.get("targetRevision", ""))):
        problems.append(
            f"argocd: Application/{name}: chart {src['chart']} targetRevision "
            f"{src.get('targetRevision')!r} is not an exact version: pin one (x.y.z)"
        )
    project = projects.get(app["spec"]["project"])
    if project is None:
        return [*problems, f"argocd: Application/{name}: no AppProject {app['spec']['project']}"]
    if src["repoURL"] not in project["spec"].get("sourceRepos", []):
        problems.append(
            f"argocd: Application/{name}: {src['repoURL']} not in its project's sourceRepos"
        )
    allowed = {
        (d.get("server"), d.get("namespace")) for d in project["spec"].get("destinations", [])
    }
    if (dest.get("server"), dest.get("namespace")) not in allowed:
        problems.append(f"argocd: Application/{name}: destination {dest} not in its project's")
    return problems


def _pod_specs(doc: dict) -> list[tuple[str, dict]]:
    """(where, pod spec) of the pods a DaskJob describes."""
    name = f"DaskJob/{doc['metadata']['name']}"
    where = {"job": "spec.job.spec", "scheduler": "spec.cluster.spec.scheduler.spec"}
    where["worker"] = "spec.cluster.spec.worker.spec"
    return [(f"{name} {part}", dig(doc, path) or {}) for part, path in where.items()]


def _dask_job_references(env: str, docs: list[dict]) -> list[str]:
    """Every ConfigMap, Secret, claim and service account a DaskJob's pods name is in the
    render. kustomize rewrites such names (generated suffixes, prefixes) only in kinds it
    knows, so a reference inside a DaskJob can silently point at nothing."""
    present = {(d["kind"], d["metadata"]["name"]) for d in docs}
    present |= {
        ("Secret", dig(d, "spec.target.name")) for d in docs if d["kind"] == "ExternalSecret"
    }
    problems = []
    for doc in (d for d in docs if d["kind"] == "DaskJob"):
        for where, spec in _pod_specs(doc):
            wanted = {("ServiceAccount", spec.get("serviceAccountName", "default"))}
            wanted |= {
                ("PersistentVolumeClaim", v["persistentVolumeClaim"]["claimName"])
                for v in spec.get("volumes", [])
                if "persistentVolumeClaim" in v
            }
            for c in spec.get("initContainers", []) + spec.get("containers", []):
                for src in c.get("envFrom", []):
                    if "configMapRef" in src:
                        wanted.add(("ConfigMap", src["configMapRef"]["name"]))
                    if "secretRef" in src:
                        wanted.add(("Secret", src["secretRef"]["name"]))
                for var in c.get("env", []):
                    ref = dig(var, "valueFrom.secretKeyRef") or dig(
                        var, "valueFrom.configMapKeyRef"
                    )
                    if ref:
                        kind = "Secret" if "secretKeyRef" in var["valueFrom"] else "ConfigMap"
                        wanted.add((kind, ref["name"]))
            problems += [
                f"{env}: {where} names {kind} {ref_name}, which the overlay does not render"
                + (
                    " (a generated ConfigMap needs disableNameSuffixHash)"
                    if kind == "ConfigMap"
                    else ""
                )
                for kind, ref_name in sorted(wanted - present)
                if not (kind == "ServiceAccount" and ref_name == "default")
            ]
    return problems


def check_policy() -> str:
    argocd = rendered("argocd")
    every_app = [d for d in argocd if d["kind"] == "Application"]
    # The environments' applications deploy an overlay of this repository; the add-ons (a
    # Helm chart, such as the Dask operator) follow their own rules.
    addons = [a for a in every_app if "chart" in a["spec"]["source"]]
    apps = {a["metadata"]["name"]: a for a in every_app if a not in addons}
    projects = {d["metadata"]["name"]: d for d in argocd if d["kind"] == "AppProject"}
    problems: list[str] = []
    hosts: dict[str, str] = {}
    for env in overlays():
        docs = rendered(env)
        namespace, found = _namespace(env, docs)
        problems += found
        rules = (_graceful_shutdown, _exposure, _availability, _default_deny, _own_secrets)
        for rule in (*rules, _dask_job_references):
            problems += rule(env, docs)
        problems += _release_line(env)
        app = apps.get(namespace) if namespace is not None else None
        problems += _project_allows(
            env, docs, projects.get(app["spec"]["project"]) if app else None
        )
        for ing in (d for d in docs if d["kind"] == "Ingress"):
            for rule in ing["spec"]["rules"]:
                owner = hosts.setdefault(rule.get("host"), env)
                if owner != env:
                    problems.append(
                        f"{env}: Ingress host {rule.get('host')} is also {owner}'s: "
                        "set this environment's host in its ingress patch"
                    )
        if namespace is not None:
            problems += _argocd_application(env, namespace, apps.get(namespace))
    repo_urls = {a["spec"]["source"]["repoURL"] for a in apps.values()}
    names = {a["spec"]["project"] for a in apps.values()}
    env_project = projects.get(names.pop()) if len(names) == 1 else None
    if (
        len(repo_urls) != 1
        or not env_project
        or set(env_project["spec"]["sourceRepos"]) != repo_urls
    ):
        problems.append(f"argocd: applications and project disagree on the repository: {repo_urls}")
    for addon in addons:
        problems += _addon_application(addon, projects)
    if problems:
        raise CheckFailed("\n".join(problems))
    return (
        f"{len(overlays())} overlays, {len(apps)} Argo CD applications and {len(addons)} "
        "add-on applications follow the rules"
    )
