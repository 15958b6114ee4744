"""The Tuner's search space, and how its best values reach the Trainer.

One home for the space: the Tuner (tuner.py) searches it, the Trainer (trainer.py)
applies the best values the Tuner wrote (TFX hands them to run_fn as
fn_args.hyperparameters, KerasTuner's HyperParameters config: {"space", "values"}).
Plain dicts here, so the Trainer needs no KerasTuner.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

# What a night's data can move: the step size and the regularisation. The
# architecture and image size stay the configuration's (they decide warm starts).
SEARCH_SPACE: dict[str, tuple[float, ...]] = {
    "learning_rate": (3e-4, 1e-3, 3e-3, 1e-2),
    "dropout": (0.1, 0.2, 0.35),
}


def keras_tuner_space():
    """The space as KerasTuner's HyperParameters (imported here: the Tuner node only)."""
    import keras_tuner

    space = keras_tuner.HyperParameters()
    for name, values in SEARCH_SPACE.items():
        space.Choice(name, list(values))
    return space


def best_values(hyperparameters: Optional[Mapping[str, Any]]) -> dict[str, float]:
    """The searched values out of the Tuner's output (its config, or bare values);
    names outside the search space are refused, not silently ignored."""
    if not hyperparameters:
        return {}
    values = dict(hyperparameters.get("values", hyperparameters))
    unknown = sorted(set(values) - set(SEARCH_SPACE))
    if unknown:
        raise ValueError(f"hyperparameters {unknown} are not in the search space "
                         f"{sorted(SEARCH_SPACE)}")
    return {name: float(value) for name, value in values.items()}


def apply(settings: Mapping[str, Any], hyperparameters: Optional[Mapping[str, Any]]) -> dict:
    """The Trainer's settings with the Tuner's best values over the configuration's."""
    return {**settings, **best_values(hyperparameters)}
