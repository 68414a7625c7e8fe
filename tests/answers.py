"""The answers a render gets, derived by cookiecutter itself from cookiecutter.json.

Every test that needs an answer (a derived slug, a default, a private ``__`` variable) asks
this module, so no test re-implements cookiecutter.json's derivations and drifts from them
(a hand-written ``lower().replace(" ", "-")`` once turned "My_Model X" into ``my_model-x``
where the template derives ``my-model-x``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cookiecutter.generate import generate_context
from cookiecutter.prompt import prompt_for_config

TEMPLATE = Path(__file__).resolve().parent.parent
COOKIECUTTER_JSON = TEMPLATE / "cookiecutter.json"


def answers(**overrides: Any) -> dict[str, Any]:
    """``{{ cookiecutter }}`` as the hooks see it for ``cookiecutter --no-input`` with these
    overrides (a user's ~/.cookiecutterrc is ignored, as the tests render with the defaults).

    Cookiecutter adds ``_template``, ``_repo_dir`` and ``_checkout`` after prompting; they are
    added here the same way. ``_output_dir`` is left out: it depends on where a test renders.
    """
    context = generate_context(context_file=str(COOKIECUTTER_JSON), extra_context=overrides)
    derived = dict(prompt_for_config(context, no_input=True))
    derived.update(_template=str(TEMPLATE), _repo_dir=str(TEMPLATE), _checkout=None)
    return derived
