"""ServingModelStrategy: the Resolver gives the model that serves, not the latest blessed one.

The two differ whenever a blessed model was not pushed (the data gate blocked
that night) or a version was rolled back to: tonight's Evaluator must compare
against what users get, and prediction drift must watch that model. The pick
is the Model artifact the serving pointer ({serving}/CURRENT, see history.py)
records; with no pointer, or one naming a model this store does not have, it
falls back to TFX's own rule, the latest blessed model.

The serving location is read from the configuration at resolve time (it is a
machine-specific value, so it is not in the compiled pipeline); `serving_dir`
overrides it (tests).
"""
from __future__ import annotations

import logging
from typing import Dict, List, Optional

from tfx import types
from tfx.dsl.components.common import resolver
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import (
    LatestBlessedModelStrategy)
from tfx.types import standard_artifacts

from pipeline_src.serving import history

log = logging.getLogger(__name__)
CURRENT_MODEL_ID = "current_model_id"     # the Evaluator's properties on a ModelBlessing
BLESSED = "blessed"


class ServingModelStrategy(resolver.ResolverStrategy):
    """Resolves the serving Model (and its ModelBlessing), else the latest blessed one.

    Used like LatestBlessedModelStrategy, with a `model` and a `model_blessing` channel.
    """

    def __init__(self, serving_dir: Optional[str] = None):
        self._serving_dir = serving_dir

    def _serving(self) -> str:
        if self._serving_dir:
            return self._serving_dir
        from pipeline_src.config import load_config

        return load_config().paths.serving

    @staticmethod
    def _keys(input_dict: Dict[str, List[types.Artifact]]) -> tuple[str, str]:
        model_key = blessing_key = None
        for key, artifacts in input_dict.items():
            if artifacts and isinstance(artifacts[0], standard_artifacts.Model):
                model_key = key
            elif artifacts and isinstance(artifacts[0], standard_artifacts.ModelBlessing):
                blessing_key = key
        if model_key is None or blessing_key is None:
            raise RuntimeError("ServingModelStrategy expects a Model and a ModelBlessing "
                               f"channel, got {sorted(input_dict)}")
        return model_key, blessing_key

    def _serving_model(self, models: List[types.Artifact]) -> Optional[types.Artifact]:
        pointer = history.read_pointer(self._serving())
        if not pointer:
            return None
        recorded = pointer.get("model") or {}
        for same in (lambda m: m.id == recorded.get("id") and m.uri == recorded.get("uri"),
                     lambda m: bool(recorded.get("uri")) and m.uri == recorded["uri"]):
            for model in models:    # by id and uri; else by uri (the store was re-created)
                if same(model):
                    log.info("the serving model: version %s, Model artifact %d (%s)",
                             pointer["version"], model.id, model.uri)
                    return model
        log.warning("the serving version %s names model %s, which is not in this MLMD store: "
                    "falling back to the latest blessed model", pointer["version"], recorded)
        return None

    def resolve_artifacts(self, store, input_dict: Dict[str, List[types.Artifact]]
                          ) -> Optional[Dict[str, List[types.Artifact]]]:
        if len(input_dict) != 2:
            raise RuntimeError("ServingModelStrategy expects 2 input channels")
        if any(not artifacts for artifacts in input_dict.values()):
            return {key: [] for key in input_dict}     # the first night: no baseline yet
        model_key, blessing_key = self._keys(input_dict)
        model = self._serving_model(list(input_dict[model_key]))
        if model is None:
            return LatestBlessedModelStrategy().resolve_artifacts(store, input_dict)
        blessings = sorted(
            (b for b in input_dict[blessing_key]
             if b.get_int_custom_property(CURRENT_MODEL_ID) == model.id
             and b.get_int_custom_property(BLESSED) == 1), key=lambda b: b.id)
        return {model_key: [model], blessing_key: blessings[-1:]}
