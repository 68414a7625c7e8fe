"""copier's side of the hooks, so one tree renders the same under copier as under cookiecutter.

- ``CookiecutterNamespace`` gives the templates their ``cookiecutter`` namespace: copier's
  answers plus the private ``__`` values, derived from cookiecutter.json's own expressions
  (not re-written here), and the names of copier's answers files.
- ``CopyWithoutRender`` keeps cookiecutter.json's ``_copy_without_render`` files verbatim.
- ``cookiecutter_check`` is copier.yml's validator: the pre-generation hook's checks, with
  their sentences.
"""

from __future__ import annotations

import fnmatch
import functools
import importlib.util
import json
from pathlib import Path
from typing import Any

from copier_template_extensions import ContextHook
from jinja2 import Environment, StrictUndefined, UndefinedError, pass_context
from jinja2.ext import Extension

HOOKS = Path(__file__).resolve().parent
SPEC = json.loads((HOOKS.parent / "cookiecutter.json").read_text())
ANSWERED = [key for key in SPEC if not key.startswith("_")]
DERIVED = [key for key, value in SPEC.items() if key.startswith("__") and isinstance(value, str)]


def _load_pre_gen():
    spec = importlib.util.spec_from_file_location("pre_gen_project", HOOKS / "pre_gen_project.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pre_gen = _load_pre_gen()
_derive = Environment(undefined=StrictUndefined, keep_trailing_newline=True)
# Compiled once: copier renders every path and file in a fresh context, which runs the hook.
DERIVATIONS = {key: _derive.from_string(SPEC[key]) for key in DERIVED}


class AnswersFileName:
    """The answers file's name, read from copier only where a file name asks for it (reading
    ``_copier_conf.answers_file`` renders a template, which would run the hook again)."""

    def __init__(self, conf: Any, wanted: bool) -> None:
        self._conf, self._wanted = conf, wanted

    def __str__(self) -> str:
        return str(self._conf["answers_file"]) if self._wanted else ""


@functools.lru_cache(maxsize=64)
def _derived(answered: tuple[tuple[str, Any], ...]) -> dict[str, str]:
    namespace = dict(answered)
    for key, template in DERIVATIONS.items():
        try:
            namespace[key] = template.render(cookiecutter=namespace)
        except UndefinedError:
            continue  # a question it depends on is not answered yet (copier asks in order)
    return namespace


def cookiecutter_namespace(answers: dict[str, Any], conf: Any = None) -> dict[str, Any]:
    """``cookiecutter`` as the cookiecutter render sees it, from the answers given so far."""
    answered = tuple((key, answers[key]) for key in ANSWERED if key in answers)
    namespace = dict(_derived(answered))
    part = answers.get("template_part", "dev")
    namespace.update(
        __template_part=part,
        __answers=AnswersFileName(conf, True),
        __config_answers=AnswersFileName(conf, part == "config"),
    )
    return namespace


class CookiecutterNamespace(ContextHook):
    def hook(self, context: dict[str, Any]) -> None:
        context["cookiecutter"] = cookiecutter_namespace(context, context["_copier_conf"])


class CopyWithoutRender(Extension):
    """Wrap the ``_copy_without_render`` files in a raw block before Jinja parses them.

    copier names a file by its path in the template (``{{cookiecutter.project_slug}}/src/...``);
    cookiecutter's patterns are relative to the project, so the first part is dropped.
    """

    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        if name is None or "/" not in name:
            return source
        rel = name.split("/", 1)[1]
        if any(fnmatch.fnmatch(rel, pattern) for pattern in SPEC["_copy_without_render"]):
            if "{% endraw %}" in source:
                raise ValueError(f"{name} contains '{{% endraw %}}': it cannot be copied as is.")
            return "{% raw %}" + source + "{% endraw %}"
        return source


@pass_context
def cookiecutter_check(context, value: str, field: str) -> str:
    """The pre-generation hook's sentence for this answer, or "" when it is fine."""
    if field != "config_repo":
        return pre_gen.FIELD_CHECKS[field](str(value)) or ""
    # The sibling config repo must not overwrite anything: checked on a new copy only (the
    # dev repo has no answers file yet); an update renders into the repo that made it.
    conf = context["_copier_conf"]
    dst = Path(str(conf["dst_path"]))
    if context.get("template_part", "dev") != "dev" or (dst / str(conf["answers_file"])).exists():
        return ""
    name = cookiecutter_namespace(dict(context))["__config_repo_name"]
    return pre_gen.check_config_target(name, str(value), dst.resolve().parent) or ""


def as_json(namespace: dict[str, Any]) -> str:
    """The namespace for copier's task, as the post-generation hook gets it (plain values;
    the answers files are copier's own business there)."""
    lazy = {"__answers", "__config_answers"}
    return json.dumps({k: "" if k in lazy else v for k, v in namespace.items()})


class Checks(Extension):
    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters["cookiecutter_check"] = cookiecutter_check
        environment.filters["cookiecutter_json"] = as_json
