"""dvc.yaml declares exactly what each stage's code imports and reads; no module imports upwards.

DVC re-runs a stage only when something it declares changes: a module or a param that a stage
uses without declaring it lets `dvc repro` call a stale model up to date. So, for every stage:

- its code is the module its `cmd` runs (the CLI's command table); its modules are every module
  of this package that one imports, anywhere in its code (function-level imports too), walked
  transitively with `ast`. They must be the stage's `src/` deps, no more, no fewer.
- the params it reads are the literal keys of `params.read("<key>")` and `params.path("<name>")`
  (= `paths.<name>`) in those modules, the only way the code reads params.yaml (see config.py).
  Each must be declared in the stage's `params` or referenced as `${<key>}` in its definition,
  and each declared key must be read.
- every other path in the stage is a `${...}` from params.yaml, never a literal.

The CLI that dispatches to the stage module is not a dependency: it only picks the module, and
this test reads the same table. `__init__.py` files run on import but may hold only a docstring
and constants (checked below), so only one that is imported by name (`from .. import
__version__`) is a dependency.
"""

from __future__ import annotations

import ast
import copy
from functools import cache
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }} import cli, model_files

from dvc_support import REPO, entry_path, raw_pipeline, references

PACKAGE = "{{ cookiecutter.package_name }}"
SRC = REPO / "src"
# Accessor → the params.yaml key prefix of its argument.
ACCESSORS = {"read": "", "path": "paths."}

# The layers, bottom up. A module imports only from lower layers or from its own part.
# serving, data and monitoring are peers that never import each other.
LAYERS = {
    "features": (0, "bottom"),
    "config": (0, "bottom"),
    "model_files": (0, "bottom"),
    "data": (1, "data"),
    "monitoring": (1, "monitoring"),
    "serving": (1, "serving"),
    "pipeline": (2, "pipeline"),
    "cli": (3, "tools"),
    "bench": (3, "tools"),
    "bench_naive": (3, "tools"),
    "bench_baselines": (3, "tools"),
    "bench_train": (3, "tools"),
    "ci": (3, "tools"),
}
# Never on the request path (the service's speed and image size depend on it).
SERVING_FORBIDDEN = {"pandas", "sklearn", "skl2onnx", "matplotlib"}


def module_file(module: str) -> Path | None:
    base = SRC.joinpath(*module.split("."))
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def rel(module: str) -> str:
    path = module_file(module)
    assert path is not None, module
    return path.relative_to(REPO).as_posix()


def all_modules() -> list[str]:
    modules = []
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return modules


@cache
def tree(module: str) -> ast.Module:
    path = module_file(module)
    assert path is not None, module
    return ast.parse(path.read_text(), filename=str(path))


def own(name: str) -> bool:
    return name == PACKAGE or name.startswith(PACKAGE + ".")


@cache
def imports(module: str) -> tuple[set[str], set[str]]:
    """(modules of this package, top-level third-party names) that ``module`` imports."""
    path = module_file(module)
    assert path is not None, module
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    external: set[str] = set()
    for node in ast.walk(tree(module)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                (found if own(alias.name) else external).add(
                    alias.name if own(alias.name) else alias.name.split(".")[0]
                )
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            if not own(base):
                external.add(base.split(".")[0])
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if module_file(sub) else base)
    return found, external


def closure(module: str) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(imports(current)[0])
    return seen


@cache
def params_reads(module: str) -> tuple[frozenset[str], tuple[str, ...]]:
    """(params.yaml keys ``module`` reads, problems that would hide a read from this test)."""
    where = rel(module)
    keys: set[str] = set()
    problems: list[str] = []
    for node in ast.walk(tree(module)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            accessor, receiver = node.func.attr, node.func.value
            if accessor not in ACCESSORS:
                continue
            literal = (
                len(node.args) == 1
                and not node.keywords
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            )
            if literal:
                keys.add(ACCESSORS[accessor] + node.args[0].value)
            elif isinstance(receiver, ast.Name) and receiver.id == "params":
                problems.append(
                    f"{where}:{node.lineno}: params.{accessor}() needs one literal key, so that "
                    "tests/unit/test_dvc_graph.py can check it against dvc.yaml"
                )
        # The Params object always goes by the name `params`, so every read above is found.
        elif isinstance(node, ast.arg) and _names_params(node.annotation) and node.arg != "params":
            problems.append(f"{where}:{node.lineno}: name the Params argument `params`")
        elif isinstance(node, ast.Assign) and _makes_params(node.value):
            for target in node.targets:
                if not (isinstance(target, ast.Name) and target.id == "params"):
                    problems.append(f"{where}:{node.lineno}: name the Params object `params`")
    return frozenset(keys), tuple(problems)


def _names_params(annotation: ast.expr | None) -> bool:
    return (isinstance(annotation, ast.Name) and annotation.id == "Params") or (
        isinstance(annotation, ast.Constant) and annotation.value == "Params"
    )


def _makes_params(value: ast.expr) -> bool:
    call = value if isinstance(value, ast.Call) else None
    func = call.func if call else None
    return (isinstance(func, ast.Name) and func.id == "Params") or (
        isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Name)
        and func.value.id == "Params"
    )


def stage_module(stage: dict) -> str:
    _program, command, *rest = stage["cmd"].split()
    assert not rest and command in cli.COMMANDS, f"{stage['cmd']!r} is not one CLI command"
    return PACKAGE + cli.COMMANDS[command][0]


def covers(declared: str, key: str) -> bool:
    return key == declared or key.startswith(declared + ".")


def stage_problems(name: str, stage: dict) -> list[str]:
    """What ``stage`` (from dvc.yaml, unresolved) fails to declare, or declares in vain."""
    modules = closure(stage_module(stage))
    # An __init__.py is in the closure only where something is imported from it by name.
    needed = {rel(module) for module in modules}
    deps = [entry_path(entry) for entry in stage.get("deps", [])]
    listed = {dep for dep in deps if dep.startswith("src/")}
    problems = [
        f"stage {name!r} imports {path} but does not list it in deps"
        for path in sorted(needed - listed)
    ]
    problems += [
        f"stage {name!r} lists {path} in deps but never imports it"
        for path in sorted(listed - needed)
    ]
    paths = [
        *deps,
        *(entry_path(e) for k in ("outs", "metrics", "plots") for e in stage.get(k, [])),
    ]
    problems += [
        f"stage {name!r}: {path!r} is a literal path; declare it in params.yaml and refer to "
        "it as ${...}"
        for path in paths
        if not path.startswith("src/") and not references(path)
    ]

    reads: set[str] = set()
    for module in sorted(modules):
        keys, hidden = params_reads(module)
        reads |= keys
        problems += list(hidden)
    params = stage.get("params", [])
    assert all(isinstance(key, str) for key in params), f"stage {name}: use plain params keys"
    declared = set(params) | references({k: v for k, v in stage.items() if k != "params"})
    problems += [
        f"stage {name!r} reads params.yaml {key!r} but declares neither it nor a block holding "
        "it (in `params`, or as ${...})"
        for key in sorted(reads)
        if not any(covers(d, key) for d in declared)
    ]
    problems += [
        f"stage {name!r} declares {key!r} but its code never reads it"
        for key in sorted(declared)
        if not any(covers(key, r) or covers(r, key) for r in reads)
    ]
    return problems


STAGES = raw_pipeline()["stages"]


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_declares_exactly_what_its_code_imports_and_reads(name: str) -> None:
    problems = stage_problems(name, STAGES[name])
    assert not problems, "\n".join(problems)


def test_the_check_names_a_missing_module_a_missing_param_and_an_extra_one() -> None:
    stage = copy.deepcopy(STAGES["train"])
    matrix = f"src/{PACKAGE}/pipeline/matrix.py"
    stage["deps"].remove(matrix)
    stage["params"].remove("threshold")
    stage["params"].append("export")
    problems = "\n".join(stage_problems("train", stage))
    assert f"imports {matrix} but does not list it" in problems
    assert "reads params.yaml 'threshold' but declares neither" in problems
    assert "declares 'export' but its code never reads it" in problems


def test_export_publishes_the_served_model_files() -> None:
    outs = {entry_path(entry) for entry in STAGES["export"]["outs"]}
    assert outs == {"${paths.models}/" + name for name in model_files.FILES}


def test_no_module_imports_up_the_layers() -> None:
    problems = []
    for module in all_modules():
        if module == PACKAGE:
            continue
        top = module.split(".")[1]
        assert top in LAYERS, f"{module}: add its part of the package to LAYERS in this test"
        rank, part = LAYERS[top]
        for target in imports(module)[0]:
            if target == PACKAGE:
                continue  # the package root holds only __version__ (checked below)
            target_rank, target_part = LAYERS[target.split(".")[1]]
            if target_part != part and target_rank >= rank:
                problems.append(f"{module} imports {target} ({target_part} is not below {part})")
    assert not problems, "\n".join(problems)


def test_serving_never_imports_the_training_stack() -> None:
    for module in all_modules():
        if module.startswith(f"{PACKAGE}.serving"):
            for reached in closure(module):
                forbidden = imports(reached)[1] & SERVING_FORBIDDEN
                assert not forbidden, f"{module} reaches {reached}, which imports {forbidden}"


def test_init_files_hold_only_a_docstring_and_constants() -> None:
    for module in all_modules():
        if module_file(module).name != "__init__.py":
            continue
        for statement in tree(module).body:
            docstring = isinstance(statement, ast.Expr) and isinstance(
                statement.value, ast.Constant
            )
            constant = isinstance(statement, ast.Assign) and isinstance(
                statement.value, ast.Constant
            )
            assert docstring or constant, (
                f"{rel(module)}:{statement.lineno}: code in an __init__.py runs in every stage "
                "that imports its package without being a DVC dependency; move it to a module"
            )
