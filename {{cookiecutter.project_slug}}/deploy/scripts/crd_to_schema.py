#!/usr/bin/env python3
"""Turn CustomResourceDefinitions into the strict JSON Schemas vendored in schemas/crds/.

    python scripts/crd_to_schema.py --source URL crd.yaml [crd.yaml ...]

Writes schemas/crds/<group>/<kind>_<version>.json for every served version of each CRD. Run it
by hand when a cluster add-on's CRDs change (schemas/README.md lists the sources); `make test`
only reads the result, so it never needs the network.

Kubernetes prunes unknown fields of a custom resource silently, so a typo such as
`remoteRef.proprety` is accepted by the API server and then does nothing. The conversion makes
every object that lists its `properties` closed (`additionalProperties: false`), except where
the CRD itself allows arbitrary fields (`x-kubernetes-preserve-unknown-fields` or its own
`additionalProperties`). OpenAPI extensions become their JSON Schema equivalents
(`nullable`, `x-kubernetes-int-or-string`); descriptions and CEL rules (`x-kubernetes-
validations`, checked only by the API server) are left out. Fields that only controllers write
(`status`, Argo CD's `operation`) are not part of the desired state kept in git, so they are
dropped and a committed one fails.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

OUT = Path(__file__).resolve().parent.parent / "schemas" / "crds"
CONTROLLER_FIELDS = ("status", "operation")

# Fields of ObjectMeta (k8s.io/apimachinery/pkg/apis/meta/v1), so a typo in metadata fails as it
# does for the built-in kinds. The CRDs themselves only say `type: object`.
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
OBJECT_META = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        "generateName": {"type": "string"},
        "namespace": {"type": "string"},
        "labels": STRING_MAP,
        "annotations": STRING_MAP,
        "finalizers": {"type": "array", "items": {"type": "string"}},
        "ownerReferences": {"type": "array"},
        "uid": {"type": "string"},
        "resourceVersion": {"type": "string"},
        "generation": {"type": "integer"},
        "creationTimestamp": {},
        "deletionTimestamp": {},
        "deletionGracePeriodSeconds": {"type": "integer"},
        "managedFields": {"type": "array"},
        "selfLink": {"type": "string"},
    },
}


class NotACrd(Exception):
    """The input file is not a CustomResourceDefinition with schemas."""


def strict(node: object) -> object:
    """One OpenAPI v3 schema node as a closed JSON Schema node (recursively)."""
    if isinstance(node, list):
        return [strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, object] = {}
    for key, value in node.items():
        if key == "description" or key.startswith("x-kubernetes-") or key == "nullable":
            continue
        if key == "properties":
            out[key] = {name: strict(sub) for name, sub in value.items()}
        elif key in {"items", "additionalProperties", "not", "anyOf", "oneOf", "allOf"}:
            out[key] = strict(value)
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string") and "anyOf" not in out:
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable"):
        if "type" in out:
            out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    open_by_design = node.get("x-kubernetes-preserve-unknown-fields") or (
        "additionalProperties" in node
    )
    if "properties" in node and not open_by_design:
        out["additionalProperties"] = False
    return out


def resource_schema(group: str, kind: str, version: dict, source: str) -> dict:
    """The schema of one served version of a custom resource, as written in git."""
    openapi = version.get("schema", {}).get("openAPIV3Schema")
    if not openapi:
        raise NotACrd(f"{kind} {version['name']}: no openAPIV3Schema")
    body = strict(openapi)
    props = body.setdefault("properties", {})
    for field in CONTROLLER_FIELDS:
        props.pop(field, None)
    props["apiVersion"] = {"const": f"{group}/{version['name']}"}
    props["kind"] = {"const": kind}
    props["metadata"] = OBJECT_META
    body["required"] = sorted({"apiVersion", "kind", *body.get("required", [])})
    body["additionalProperties"] = False
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$comment": f"{kind} {group}/{version['name']} from {source}, converted by "
        "scripts/crd_to_schema.py: do not edit by hand.",
        **body,
    }


def convert(path: Path, source: str, out_dir: Path = OUT) -> list[Path]:
    written = []
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    crds = [d for d in docs if d.get("kind") == "CustomResourceDefinition"]
    if not crds:
        raise NotACrd(f"{path}: no CustomResourceDefinition in it")
    for crd in crds:
        try:
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            versions = list(crd["spec"]["versions"])
        except (KeyError, TypeError) as exc:
            raise NotACrd(f"{path}: a CustomResourceDefinition without spec {exc}") from exc
        for version in versions:
            if not version.get("served"):
                continue
            target = out_dir / group / f"{kind.lower()}_{version['name']}.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            schema = resource_schema(group, kind, version, source)
            target.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
            written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("crds", nargs="+", type=Path, help="CRD YAML files")
    parser.add_argument(
        "--source", required=True, help="where the CRDs come from (URL at a release tag)"
    )
    parser.add_argument("--out", type=Path, default=OUT, help="default: schemas/crds/")
    args = parser.parse_args(argv)
    try:
        for path in args.crds:
            for target in convert(path, args.source, args.out):
                print(f"wrote {target}")
    except (NotACrd, OSError, yaml.YAMLError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
