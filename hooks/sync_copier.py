"""Write the files that repeat cookiecutter.json, from cookiecutter.json (the one source).

- ``copier.yml``: the same questions, defaults, prompts and choices for copier, each free-text
  question validated by the pre-generation hook's own check (through hooks/copier_extensions.py),
  the files the post-generation hook prunes excluded under the same conditions, and the
  settings that make copier render this tree as cookiecutter does.
- ``config/cookiecutter.json``: the config repo's template for cookiecutter and cruft
  (``--directory config``), the same questions with paths relative to the config repo.

``python hooks/sync_copier.py`` rewrites both; ``--check`` exits 1 when either is stale (the
fast tier runs it: tests/test_copier.py).
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "cookiecutter.json"
COPIER_YML = ROOT / "copier.yml"
CONFIG_SPEC = ROOT / "config" / "cookiecutter.json"
CONFIG_DIR = "deploy/"  # where the config repo's files live in the dev tree
DEV_DIR = "{{cookiecutter.project_slug}}"


def load_hook(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, Path(__file__).parent / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def to_copier_jinja(value: str) -> str:
    """cookiecutter.json's derivations name earlier answers as ``cookiecutter.x``; copier as x."""
    return re.sub(r"\bcookiecutter\.", "", value)


def quote(value: str) -> str:
    """A YAML scalar: JSON strings are valid YAML double-quoted strings."""
    return json.dumps(value, ensure_ascii=False)


def question_lines(name: str, default, prompt, checked: bool) -> list[str]:
    lines = [f"{name}:", "  type: str"]
    if isinstance(prompt, dict):
        lines.append(f"  help: {quote(prompt['__prompt__'])}")
    elif prompt:
        lines.append(f"  help: {quote(prompt)}")
    if isinstance(default, list):
        lines.append("  choices:")
        labels = prompt if isinstance(prompt, dict) else {}
        lines += [f"    {quote(labels.get(value, value))}: {quote(value)}" for value in default]
        lines.append(f"  default: {quote(default[0])}")
    else:
        lines.append(f"  default: {quote(to_copier_jinja(default))}")
    if checked:
        lines.append(
            f"  validator: {quote('{{ ' + name + ' | cookiecutter_check(' + quote(name) + ') }}')}"
        )
    return lines


def copier_yml(spec: dict) -> str:
    pre_gen = load_hook("pre_gen_project")
    post_gen = load_hook("post_gen_project")
    prompts = spec.get("__prompts__", {})
    checked = set(pre_gen.FIELD_CHECKS) | {"config_repo"}  # config_repo: the sibling's path
    out = [
        "# GENERATED from cookiecutter.json by hooks/sync_copier.py: edit those, then run",
        "# `python hooks/sync_copier.py` (tests/test_copier.py fails while this file is stale).",
        "",
        "# Which repository this copy is: dev (which makes the config repo beside it, when",
        "# config_repo=separate) or config. Recorded in each repo's answers file, so",
        "# `copier update` in the config repo renders the config repo's part of the tree.",
        "template_part:",
        "  type: str",
        "  choices: [dev, config]",
        "  default: dev",
        "  ask: false",
        "",
    ]
    for name, default in spec.items():
        if name.startswith("_"):
            continue
        out += question_lines(name, default, prompts.get(name), name in checked)
        out.append("")
    # The files the post-generation hook prunes, excluded under the same conditions.
    excludes = [
        "{% if " + f"{option} in {sorted(values)!r}" + " %}" + path + "{% endif %}"
        for option, values, paths in post_gen.PRUNE_RULES
        for path in paths
    ]
    excludes.append(
        "{% if template_part == 'dev' and config_repo == 'separate' %}deploy{% endif %}"
    )
    out += [
        "_min_copier_version: '9.19'",
        "# Every file is a template, as under cookiecutter; _copy_without_render is kept by",
        "# the CopyWithoutRender extension.",
        '_templates_suffix: ""',
        "# A misspelt variable fails the render, as under cookiecutter (never an empty string).",
        "_envops:",
        "  undefined: jinja2.StrictUndefined",
        "_subdirectory: >-",
        "  {% if template_part == 'config' %}{% raw %}" + DEV_DIR + "/deploy{% endraw %}"
        "{% else %}{% raw %}" + DEV_DIR + "{% endraw %}{% endif %}",
        "_answers_file: .copier-answers.yml",
        "_jinja_extensions:",
        "  - copier_template_extensions.TemplateExtensionLoader",
        "  - hooks/copier_extensions.py:CookiecutterNamespace",
        "  - hooks/copier_extensions.py:CopyWithoutRender",
        "  - hooks/copier_extensions.py:Checks",
        "_exclude:",
        "  - .git",
        "  - __pycache__",
        "  - '*.py[co]'",
        *[f"  - {quote(line)}" for line in excludes],
        "# What the post-generation hook does (the config repo beside the dev repo, the first",
        "# commits), on copy only: an update changes files, never the repositories around them.",
        "_tasks:",
        "  - command:",
        '      - "{{ _copier_python }}"',
        '      - "{{ _copier_conf.src_path }}/hooks/copier_tasks.py"',
        '      - "{{ cookiecutter | cookiecutter_json }}"',
        '      - "{{ _copier_conf.src_path }}"',
        '      - "{{ _copier_conf.vcs_ref_hash }}"',
        '      - "{{ _copier_answers._src_path }}"',
        "    when: \"{{ _copier_operation == 'copy' }}\"",
        "",
    ]
    return "\n".join(out)


def config_spec(spec: dict) -> dict:
    """The config repo's cookiecutter.json: its paths are relative to the config repo."""
    config = dict(spec)
    config["__template_part"] = "config"
    config["_copy_without_render"] = [
        pattern.removeprefix(CONFIG_DIR)
        for pattern in spec["_copy_without_render"]
        if pattern.startswith(CONFIG_DIR)
    ]
    return config


def outputs() -> dict[Path, str]:
    spec = json.loads(SPEC.read_text())
    return {
        COPIER_YML: copier_yml(spec),
        CONFIG_SPEC: json.dumps(config_spec(spec), indent=2, ensure_ascii=False) + "\n",
    }


def main(argv: list[str]) -> int:
    stale = [
        path for path, text in outputs().items() if not path.is_file() or path.read_text() != text
    ]
    if "--check" in argv:
        for path in stale:
            print(
                f"{path.relative_to(ROOT)} is stale: run `python hooks/sync_copier.py`.",
                file=sys.stderr,
            )
        return 1 if stale else 0
    for path, text in outputs().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
