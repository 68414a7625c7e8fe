"""Set the image tag (and digest) of one ``images:`` entry in a kustomization.yaml.

The file is parsed as YAML to find the entry and its ``newTag``/``digest`` values; only those
scalars are rewritten in the text, so comments and layout survive, and the result is parsed
again and compared with the expected data: anything else changing is an error, never a silent
edit. Used by the release job (GitOps hand-off) and runnable by hand:

    <project> bump-image k8s/overlays/staging/kustomization.yaml --tag v1.2.0 --digest sha256:...
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")  # the OCI/Docker tag grammar
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


class BumpError(ValueError):
    """The overlay cannot be bumped as asked; the message says which file and why."""


def _mapping_items(node: yaml.Node) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    if not isinstance(node, yaml.MappingNode):
        raise BumpError(f"expected a mapping at line {node.start_mark.line + 1}")
    return {k.value: (k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode)}


def _select(entries: yaml.SequenceNode, image: str | None) -> yaml.MappingNode:
    items = [e for e in entries.value if isinstance(e, yaml.MappingNode)]
    if image is None:
        if len(items) != 1:
            raise BumpError(f"{len(items)} images: entries; name one with --image")
        return items[0]
    for entry in items:
        fields = _mapping_items(entry)
        names = {fields[k][1].value for k in ("name", "newName") if k in fields}
        if image in names:
            return entry
    raise BumpError(f"no images: entry has name or newName {image!r}")


def bump_text(text: str, tag: str, digest: str | None = None, image: str | None = None) -> str:
    """The kustomization text with the entry's newTag (and digest) set."""
    if not TAG.match(tag):
        raise BumpError(f"{tag!r} is not a valid image tag")
    if digest is not None and not DIGEST.match(digest):
        raise BumpError(f"{digest!r} is not a sha256 digest")
    root = yaml.compose(text)
    if root is None:
        raise BumpError("empty kustomization")
    top = _mapping_items(root)
    if "images" not in top or not isinstance(top["images"][1], yaml.SequenceNode):
        raise BumpError("no images: list in the kustomization")
    entry = _select(top["images"][1], image)
    fields = _mapping_items(entry)
    if "newTag" not in fields:
        raise BumpError("the images: entry has no newTag to bump")

    lines = text.splitlines(keepends=True)
    edits: list[tuple[int, int, int, str]] = []  # (line, start col, end col, replacement)
    for key, value in (("newTag", tag), ("digest", digest)):
        if value is None or key not in fields:
            continue
        node = fields[key][1]
        if node.start_mark.line != node.end_mark.line:
            raise BumpError(f"{key} spans several lines; write it on one line")
        edits.append(
            (node.start_mark.line, node.start_mark.column, node.end_mark.column, f'"{value}"')
        )
    for line, start, end, new in sorted(edits, reverse=True):
        lines[line] = lines[line][:start] + new + lines[line][end:]
    if digest is not None and "digest" not in fields:
        key_node = fields["newTag"][0]
        indent = " " * key_node.start_mark.column
        at = fields["newTag"][1].end_mark.line + 1
        if at > len(lines) or not lines[at - 1].endswith("\n"):
            lines[at - 1] = lines[at - 1].rstrip("\n") + "\n"
        lines.insert(at, f'{indent}digest: "{digest}"\n')
    result = "".join(lines)

    expected = yaml.safe_load(text)
    target = _select_data(expected["images"], image)
    target["newTag"] = tag
    if digest is not None:
        target["digest"] = digest
    if yaml.safe_load(result) != expected:
        raise BumpError("the text edit changed more than newTag/digest; edit the file by hand")
    return result


def _select_data(images: list[dict], image: str | None) -> dict:
    if image is None:
        return images[0]
    return next(e for e in images if image in (e.get("name"), e.get("newName")))


def bump_file(path: Path, tag: str, digest: str | None = None, image: str | None = None) -> bool:
    """Rewrite ``path``; return whether it changed."""
    old = path.read_text()
    new = bump_text(old, tag, digest, image)
    if new != old:
        path.write_text(new)
    return new != old


def main(argv: Sequence[str] = ()) -> int:
    parser = argparse.ArgumentParser(description="set newTag/digest of an images: entry")
    parser.add_argument("kustomization", type=Path)
    parser.add_argument("--tag", required=True)
    parser.add_argument("--digest", default=None, help="sha256:<64 hex> (optional)")
    parser.add_argument("--image", default=None, help="the entry's name or newName (if several)")
    args = parser.parse_args(list(argv))
    try:
        changed = bump_file(args.kustomization, args.tag, args.digest, args.image)
    except (BumpError, OSError, yaml.YAMLError) as exc:
        print(f"bump-image: {args.kustomization}: {exc}", file=sys.stderr)
        return 1
    print(f"{args.kustomization}: {'set to' if changed else 'already at'} {args.tag}")
    return 0
