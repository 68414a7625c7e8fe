"""What the Dask Kubernetes operator makes of a DaskJob, for the validators that know no CRD.

kubernetes-validate, checkov and trivy check built-in kinds only: a DaskJob's three pod specs
(the job runner, the scheduler, the workers) would reach the cluster unchecked. The operator
turns them into a Pod (`<job>-runner`) and two Deployments (`<job>-scheduler`, one per worker),
copying the DaskJob's labels and annotations (checkov skips included) and adding its own
`dask.org/*` labels. The render check writes those objects next to each overlay's render
(`build/rendered/<env>.dask-operator.yaml`), so every check on rendered objects sees them as
the cluster will.

Modelled on dask_kubernetes/operator/controller/controller.py of the release whose CRD is
vendored in schemas/crds/kubernetes.dask.org/ (build_job_pod_spec,
build_scheduler_deployment_spec, build_worker_deployment_spec).
"""

from __future__ import annotations

import copy

from common import dig

SUFFIX = ".dask-operator"  # build/rendered/<env>.dask-operator.yaml


def _meta(job: dict, component: str, *extra: dict | None) -> dict:
    labels = dict(dig(job, "metadata.labels") or {})
    annotations = dict(dig(job, "metadata.annotations") or {})
    for meta in extra:
        labels.update((meta or {}).get("labels", {}))
        annotations.update((meta or {}).get("annotations", {}))
    name = job["metadata"]["name"]
    labels |= {"dask.org/cluster-name": name, "dask.org/component": component}
    suffix = {"job-runner": "runner", "scheduler": "scheduler", "worker": "worker"}[component]
    meta = {"name": f"{name}-{suffix}", "labels": labels}
    if "namespace" in job["metadata"]:
        meta["namespace"] = job["metadata"]["namespace"]
    if annotations:
        meta["annotations"] = annotations
    return meta


def _deployment(meta: dict, pod_spec: dict) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": meta["labels"]},
            "template": {"metadata": {"labels": meta["labels"]}, "spec": copy.deepcopy(pod_spec)},
        },
    }


def operator_objects(job: dict) -> list[dict]:
    """The Pod and Deployments the operator creates for one DaskJob (no Services: the
    scheduler's is written in the DaskJob as a plain ServiceSpec, checked by its schema)."""
    spec = job.get("spec") or {}
    cluster = dig(spec, "cluster") or {}
    runner = _meta(job, "job-runner", dig(spec, "job.metadata"))
    scheduler = _meta(
        job, "scheduler", cluster.get("metadata"), dig(cluster, "spec.scheduler.metadata")
    )
    worker = _meta(job, "worker", cluster.get("metadata"), dig(cluster, "spec.worker.metadata"))
    return [
        {"apiVersion": "v1", "kind": "Pod", "metadata": runner, "spec": dig(spec, "job.spec")},
        _deployment(scheduler, dig(cluster, "spec.scheduler.spec") or {}),
        _deployment(worker, dig(cluster, "spec.worker.spec") or {}),
    ]


def for_render(docs: list[dict]) -> list[dict]:
    return [obj for doc in docs if doc.get("kind") == "DaskJob" for obj in operator_objects(doc)]
