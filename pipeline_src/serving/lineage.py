"""`emerald lineage VERSION`: what a pushed version was made from, read back from MLMD.

The push history says which version was pushed on which night; MLMD says how.
From the version's PushedModel the events are walked back as the portable
launcher recorded them: PushedModel <- Pusher <- Model <- Trainer <- Examples <-
ImageExampleGen. Each value says where it came from, because MLMD does not hold
everything. The images per night come from the Examples artifacts' `night_counts`
property (ImageExampleGen writes it: images per split and night): the train
splits the Trainer read, and, for a warm start, those its base model learnt
from, walked back through each Trainer's `base_model` input (a night counts
once, at its largest). The Trainer's training record (emerald_training.json)
says the same from the model's side; it is shown beside MLMD's count, and
stands in for Examples from before the property. The spans' manifests are
found under the spans folder ExampleGen's execution read (its `input_base`
property) and describe each span as it is now: a re-ingest since rewrites them.
"""
from __future__ import annotations

import json
from typing import Any, Optional

from pipeline_src import features, names
from pipeline_src.config import Config, UsageError
from pipeline_src.serving import history
from pipeline_src.serving.lifecycle import CORPUS, entries_of

# Where each value was read.
MLMD, TRAINING_RECORD, MANIFEST, HISTORY, CONFIG = (
    "mlmd", "training_record", "manifest", "history", "config")

# TFX's channel keys (tfx.types.standard_component_specs; ImageExampleGenSpec's
# "examples"), spelled here so a lookup does not import TFX; a test holds them equal.
EXAMPLES_KEY, MODEL_KEY, MODEL_BLESSING_KEY = "examples", "model", "model_blessing"
TRANSFORM_GRAPH_KEY, BASE_MODEL_KEY = "transform_graph", "base_model"


def dag_run_of(tfx_run_id: str) -> Optional[dict[str, Any]]:
    """The Airflow DAG run a TFX run id names (names.TFX_RUN_ID: "{run_id}.{dag_run.id}");
    None for a run id made outside Airflow (`emerald node --run-id R`)."""
    run_id, _, number = tfx_run_id.rpartition(".")
    return {"run_id": run_id, "id": int(number)} if run_id and number.isdigit() else None


class _Events:
    """The store's events and contexts, as the walk needs them."""

    def __init__(self, store):
        from ml_metadata.proto import metadata_store_pb2 as pb

        self.store, self.pb = store, pb
        self.context_types = {t.id: t.name for t in store.get_context_types()}

    def producer(self, artifact_id: int):
        """The execution that made the artifact: a COMPLETE one before a CACHED reuse."""
        ids = [e.execution_id for e in self.store.get_events_by_artifact_ids([artifact_id])
               if e.type == self.pb.Event.OUTPUT]
        rank = {self.pb.Execution.COMPLETE: 0, self.pb.Execution.CACHED: 1}
        found = sorted((x for x in self.store.get_executions_by_id(ids)
                        if x.last_known_state in rank),
                       key=lambda x: (rank[x.last_known_state], x.id))
        return found[0] if found else None

    def inputs(self, execution) -> dict[str, list]:
        """Input key -> the artifacts the execution read under it, by index.

        An artifact read under two keys (tonight's span is the Trainer's `examples` and
        in its `history`) has one event whose path holds (key, index) step pairs for each.
        """
        keyed = sorted((e.path.steps[i].key, e.path.steps[i + 1].index, e.artifact_id)
                       for e in self.store.get_events_by_execution_ids([execution.id])
                       if e.type == self.pb.Event.INPUT
                       for i in range(0, len(e.path.steps) - 1, 2))
        artifacts = {a.id: a for a in self.store.get_artifacts_by_id([i for *_, i in keyed])}
        out: dict[str, list] = {}
        for key, _, artifact_id in keyed:
            out.setdefault(key, []).append(artifacts[artifact_id])
        return out

    def run(self, execution) -> dict[str, Any]:
        """The execution's node and TFX run (its node and pipeline_run contexts)."""
        contexts = {self.context_types[c.type_id]: c.name
                    for c in self.store.get_contexts_by_execution(execution.id)}
        tfx_run = contexts.get("pipeline_run")
        return {"execution_id": execution.id, "node": contexts.get("node", "").split(".", 1)[-1],
                "pipeline": contexts.get("pipeline"), "tfx_run": tfx_run,
                "dag_run": dag_run_of(tfx_run) if tfx_run else None}


def _prop(artifact, name: str, where: str = "custom_properties"):
    """A string or int property's value, None when absent."""
    values = getattr(artifact, where)
    if name not in values:
        return None
    value = values[name]
    return value.string_value if value.WhichOneof("value") == "string_value" else value.int_value


def _ref(artifact) -> Optional[dict[str, Any]]:
    return None if artifact is None else {"id": artifact.id, "uri": artifact.uri}


def _pushed_model(store, version: str, entry: dict):
    """The Pusher's artifact of `version` (its pushed_version property); the history's id
    decides between two that claim the same version."""
    claims = [a for a in store.get_artifacts_by_type("PushedModel")
              if _prop(a, "pushed") == 1 and _prop(a, "pushed_version") == version]
    recorded = (entry.get("pushed_model") or {}).get("id")
    return next((a for a in claims if a.id == recorded), max(claims, key=lambda a: a.id,
                                                               default=None))


def _examples(events: _Events, artifact) -> dict[str, Any]:
    producer = events.producer(artifact.id)
    input_base = producer and _prop(producer, "input_base")
    split_names = _prop(artifact, "split_names", "properties")
    return {**_ref(artifact), "span": _prop(artifact, "span", "properties"),
            "split_names": json.loads(split_names) if split_names else None,
            "night": _prop(artifact, "night"), "eval_mode": _prop(artifact, "eval_mode"),
            "previous_night": _prop(artifact, "previous_night"),
            "split_counts": json.loads(_prop(artifact, "split_counts") or "{}"),
            "night_counts": json.loads(_prop(artifact, names.EXAMPLES_NIGHT_COUNTS) or "null"),
            "rejected_count": _prop(artifact, "rejected_count"),
            "producer": producer and events.run(producer), "input_base": input_base}


def _manifest(spans: str, night: str) -> dict[str, Any]:
    """The span's manifest as ingestion left it (pipeline_src/ingest/manifest.py)."""
    from pipeline_src.ingest.manifest import MANIFEST_NAME, load_manifest
    from pipeline_src.locations import location

    span_dir = location(spans) / names.CORPUS_DIR if night == CORPUS else \
        location(spans) / names.TOTO_DIR / night
    manifest = load_manifest(span_dir) or {}
    return {"path": str(span_dir / MANIFEST_NAME), "exists": bool(manifest),
            "example_count": manifest.get("example_count"),
            "written_at": manifest.get("written_at"), "source_uri": manifest.get("source_uri")}


def _learnt_from(events: _Events, trainer_inputs: dict[str, list]) -> Optional[dict[str, int]]:
    """Images per night in the train splits the model learnt from, read from MLMD: the
    Trainer's own Examples and, back through each warm start's base model, its base's
    (a night once, at its largest, as warm_start.trained_on counts it); None when an
    Examples artifact on the way predates the night_counts property."""
    counts: dict[str, int] = {}
    seen: set[int] = set()
    inputs = trainer_inputs
    while inputs:
        for artifact in inputs.get(EXAMPLES_KEY, []):
            per_split = json.loads(_prop(artifact, names.EXAMPLES_NIGHT_COUNTS) or "null")
            if per_split is None:
                return None
            for night, n in (per_split.get(features.TRAIN) or {}).items():
                counts[night] = max(int(n), counts.get(night, 0))
        base = (inputs.get(BASE_MODEL_KEY) or [None])[0]
        trainer = base is not None and base.id not in seen and events.producer(base.id)
        if not trainer:
            break
        seen.add(base.id)
        inputs = events.inputs(trainer)
    return counts


def _trained_on(config: Config, entry: dict, record: Optional[dict], examples: list[dict],
                from_mlmd: Optional[dict[str, int]]) -> dict[str, Any]:
    """Per night (corpus included) the images the version learnt from, and the span's manifest."""
    recorded = {str(k): int(v) for k, v in ((record or {}).get("night_counts") or {}).items()}
    if from_mlmd is not None:
        nights, nights_source = sorted(from_mlmd), MLMD
        sourced = {n: (c, MLMD) for n, c in from_mlmd.items()}
    else:       # Examples from before the night_counts property
        sourced = {n: (c, TRAINING_RECORD) for n, c in recorded.items()}
        if recorded:
            nights, nights_source = sorted(recorded), TRAINING_RECORD
        elif record and record.get("trained_on_nights"):
            nights, nights_source = sorted(record["trained_on_nights"]), TRAINING_RECORD
        else:           # a model from before training records: what the history kept
            trained = entry.get("trained_on") or {}
            nights = sorted(trained.get("nights") or []) + (
                [CORPUS] if trained.get("corpus") else [])
            nights_source = HISTORY
    spans = next((ex["input_base"] for ex in examples if ex["input_base"]), None)
    return {
        "nights_source": nights_source,
        "spans": spans or str(config.paths.spans), "spans_source": MLMD if spans else CONFIG,
        "train_split_images": sum(ex["split_counts"].get(features.TRAIN, 0) for ex in examples),
        "nights": [{"night": n, "images": sourced.get(n, (None, None))[0],
                    "images_source": sourced.get(n, (None, None))[1],
                    "training_record_images": recorded.get(n),
                    "manifest": _manifest(spans or str(config.paths.spans), n)}
                   for n in sorted(nights, key=lambda n: (n == CORPUS, n))]}


def _history(config: Config, version: str) -> tuple[dict, list[dict], bool]:
    """The version's push entry, all its entries, and whether it serves; UsageError if none."""
    serving = config.paths.serving
    mine = entries_of(serving, version)
    push = next((e for e in mine if e["method"] != "rollback"), mine[0])
    return push, mine, history.serving_version(serving) == version


def lineage(config: Config, version: str, store=None) -> dict[str, Any]:
    """Everything MLMD says the pushed `version` came from; UsageError when it cannot tell."""
    from pipeline_src.model.warm_start import read_training_record

    version = str(version)
    entry, entries, serves = _history(config, version)
    if store is None:
        from pipeline_src.decision.report import open_store

        store = open_store(config)
    events = _Events(store)
    pushed = _pushed_model(store, version, entry)
    pusher = pushed and events.producer(pushed.id)
    pusher_inputs = events.inputs(pusher) if pusher else {}
    model = (pusher_inputs.get(MODEL_KEY) or [None])[0]
    if model is None:
        where = (config.paths.metadata if config.metadata.backend == "sqlite"
                 else config.metadata.backend)
        what = "no PushedModel" if pushed is None else f"PushedModel {pushed.id}, no Model into it"
        raise UsageError(f"version {version} is in the push history (night {entry.get('night')})"
                         f" but MLMD ({where}) has {what} with pushed_version {version}")
    trainer = events.producer(model.id)
    trainer_inputs = events.inputs(trainer) if trainer else {}
    examples = [_examples(events, a) for a in trainer_inputs.get(EXAMPLES_KEY, [])]
    record = read_training_record(model.uri)
    blessing = (pusher_inputs.get(MODEL_BLESSING_KEY) or [None])[0]
    evaluated = [{"night": ex["night"] if ex["eval_mode"] == "newest_night" else None,
                  "eval_mode": ex["eval_mode"], "images": ex["split_counts"].get("eval"),
                  "images_source": MLMD} for ex in examples]
    pusher_run = events.run(pusher)
    return {
        "version": version, "night": entry.get("night"), "serving": serves,
        "history": [{k: e.get(k) for k in ("seq", "method", "time", "reason")} for e in entries],
        "tfx_run": pusher_run["tfx_run"], "pipeline": pusher_run["pipeline"],
        "dag_run": pusher_run["dag_run"] and {"dag_id": config.dag.dag_id,
                                              **pusher_run["dag_run"]},
        "pushed_model": {**_ref(pushed), "destination": _prop(pushed, "pushed_destination")},
        "pusher": pusher_run,
        "blessing": blessing and {**_ref(blessing), "blessed": _prop(blessing, "blessed") == 1},
        "model": _ref(model), "trainer": trainer and events.run(trainer),
        "training": record and {k: record.get(k) for k in ("mode", "reason", "base_model")},
        "transform_graph": _ref((trainer_inputs.get(TRANSFORM_GRAPH_KEY) or [None])[0]),
        "base_model": _ref((trainer_inputs.get(BASE_MODEL_KEY) or [None])[0]),
        "examples": examples,
        "trained_on": _trained_on(config, entry, record, examples,
                                  _learnt_from(events, trainer_inputs)),
        "evaluated_on": evaluated,
    }


def format_lineage(result: dict[str, Any]) -> str:
    """The lineage for people: one line per fact, then one row per night trained on."""
    def ref(kind, r):
        return f"{kind} {r['id']} at {r['uri']}" if r else "-"

    dag = result["dag_run"]
    trainer = result["trainer"] or {}
    lines = [
        f"version {result['version']}, pushed for night {result['night']}"
        + ("  (serves)" if result["serving"] else ""),
        "  history:      " + ", ".join(f"#{e['seq']} {e['method']}" for e in result["history"]),
        f"  TFX run:      {result['tfx_run']} (pipeline {result['pipeline']})",
        f"  DAG run:      " + (f"{dag['dag_id']} {dag['run_id']} (id {dag['id']})" if dag
                               else "- (not launched by Airflow)"),
        f"  pushed:       {ref('PushedModel', result['pushed_model'])} -> "
        f"{result['pushed_model']['destination']}",
        f"  model:        {ref('Model', result['model'])}",
        f"  trainer:      execution {trainer.get('execution_id')} in run {trainer.get('tfx_run')}"
        + (f", {result['training']['mode']} ({result['training']['reason']})"
           if result["training"] else ", no training record"),
        f"  blessing:     " + (f"{ref('ModelBlessing', result['blessing'])}, "
                               f"blessed={result['blessing']['blessed']}"
                               if result["blessing"] else "-"),
        f"  transform:    {ref('TransformGraph', result['transform_graph'])}",
    ]
    for ex in result["examples"]:
        splits = " ".join(f"{k}={v}" for k, v in sorted(ex["split_counts"].items()))
        lines.append(f"  examples:     {ref('Examples', ex)}, span {ex['span']} "
                     f"(night {ex['night']}, {ex['eval_mode']}): {splits}")
    for ev in result["evaluated_on"]:
        lines.append(f"  evaluated on: {ev['night'] or 'a hash split'}, {ev['images']} images "
                     f"({ev['images_source']})")
    trained = result["trained_on"]
    lines.append(f"  trained on ({trained['train_split_images']} images in the train split; "
                 f"spans {trained['spans']} from {trained['spans_source']}):")
    lines.append(f"    {'night':<10}  {'images':>6}  {'from':<15}  {'record':>6}  manifest")
    for n in trained["nights"]:
        manifest = n["manifest"]
        state = (f"{manifest['example_count']} examples now" if manifest["exists"]
                 else "missing")
        record = n["training_record_images"]
        lines.append(f"    {n['night']:<10}  {n['images'] if n['images'] is not None else '-':>6}"
                     f"  {n['images_source'] or '-':<15}"
                     f"  {record if record is not None else '-':>6}  {manifest['path']} ({state})")
    return "\n".join(lines)
