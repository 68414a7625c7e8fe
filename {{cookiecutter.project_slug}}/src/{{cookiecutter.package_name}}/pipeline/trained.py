"""The fitted model ``train`` saves (``paths.model_pickle``) for ``evaluate`` and ``export``."""

from __future__ import annotations

import pickle  # nosec B403 - loads only this pipeline's own model file (see TrainedModel.load)
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..features import FeatureSchema


def steps(model: Any) -> Iterator[Any]:
    """Every estimator inside a (possibly nested) pipeline, column transformer or union."""
    children = [
        *(step for _, step in getattr(model, "steps", ())),
        *(step for _, step, _ in getattr(model, "transformers_", ())),
        *(step for _, step in getattr(model, "transformer_list", ())),
    ]
    if not children:
        yield model
    for child in children:
        if child is not None and not isinstance(child, str):  # "passthrough" / "drop"
            yield from steps(child)


def describe(model: Any) -> str:
    """The estimator as built, e.g. "SimpleImputer → LGBMClassifier": its steps' class names."""
    return " → ".join(type(step).__name__ for step in steps(model))


@dataclass(frozen=True)
class TrainedModel:
    pipeline: Any  # the fitted scikit-learn pipeline: build_model() after fit()
    schema: FeatureSchema  # whole: the features and the threshold chosen on the validation split
    rows: dict[str, int]  # rows of each split it saw: train, valid

    @property
    def estimator(self) -> str:
        """What build_model() returned, by class names (not the `train.model` params name: a
        team's own build_model() need not read it)."""
        return describe(self.pipeline)

    def save(self, path: Path) -> None:
        """Pickle it; the protocol is pinned so that the same model gives the same bytes."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(self, protocol=5))

    @classmethod
    def load(cls, path: Path) -> TrainedModel:
        """Only ever load a model file this project's own pipeline wrote: unpickling runs code."""
        loaded = pickle.loads(path.read_bytes())  # noqa: S301  # nosec B301 - our own DVC artefact
        if not isinstance(loaded, cls):
            raise TypeError(f"{path} holds a {type(loaded).__name__}: run `dvc repro train`")
        return loaded
