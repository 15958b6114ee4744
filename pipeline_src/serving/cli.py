"""`emerald models`, `rollback VERSION`, `lineage VERSION`, `predict IMAGE...`.

Nothing heavy at import: `emerald --help` imports this module.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys

from pipeline_src.config import load_config

PREDICT_FAILED_EXIT = 1      # some image had no answer (the others are still printed)


def _pct(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def format_models(rows: list[dict]) -> str:
    if not rows:
        return "no model pushed yet"
    lines = [f"  {'seq':>4}  {'version':<12} {'night':<10}  {'how':<10} {'accuracy':>8}  "
             f"{'blessed':<7}  trained on"]
    for r in rows:
        trained = r.get("trained_on") or {}
        nights = trained.get("nights") or []
        on = "corpus" + (f" + {len(nights)} night(s)" if nights else "")
        lines.append(
            f"{'*' if r['serving'] else ' '} {r['seq']:>4}  {r['version']:<12} "
            f"{r.get('night') or '-':<10}  {r['method']:<10} "
            f"{_pct(((r.get('metrics') or {}).get('accuracy') or {}).get('overall')):>8}  "
            f"{str((r.get('blessing') or {}).get('blessed', '-')):<7}  {on}"
            + (f"  ({r['reason']})" if r.get("reason") else ""))
    lines.append("* serves")
    return "\n".join(lines)


def _models(args) -> int:
    from pipeline_src.serving import lifecycle

    rows = lifecycle.listing(load_config())
    print(json.dumps(rows, indent=1, sort_keys=True) if args.json else format_models(rows))
    return 0


def _rollback(args) -> int:
    from pipeline_src.serving import lifecycle

    entry = lifecycle.rollback(load_config(), args.version, args.reason)
    print(json.dumps(entry, sort_keys=True) if args.json else
          f"version {entry['version']} serves (was {entry['previous_version'] or 'none'}); "
          f"history entry {entry['seq']}")
    return 0


def _config_keeping_keras_home():
    """The configuration, with KERAS_HOME in EMERALD_HOME (as for a night) before anything
    imports Keras: Keras writes ~/.keras/keras.json at import. A user's value wins."""
    config = load_config()
    os.environ.setdefault("KERAS_HOME", str(config.paths.keras_home))
    return config


def _lineage(args) -> int:
    config = _config_keeping_keras_home()
    from pipeline_src.serving import lineage

    # A log handler that prints to sys.stdout (Airflow's, once Airflow is loaded) would
    # break the one JSON object: while MLMD is read, stdout is stderr.
    with contextlib.redirect_stdout(sys.stderr):
        result = lineage.lineage(config, args.version)
    print(json.dumps(result, indent=1, sort_keys=True) if args.json
          else lineage.format_lineage(result))
    return 0


def _predict(args) -> int:
    config = _config_keeping_keras_home()
    from pipeline_src.serving import predict

    version, results = predict.predict(config, args.images, args.version)
    print(json.dumps(results, indent=1) if args.json else predict.format_table(version, results))
    return PREDICT_FAILED_EXIT if any(r.get("error") for r in results) else 0


def register(subparsers) -> None:
    models = subparsers.add_parser("models", help="the push history; * marks the serving one")
    models.add_argument("--json", action="store_true")
    models.set_defaults(func=_models)

    rollback = subparsers.add_parser(
        "rollback", help="make an earlier pushed version serve again (recorded in the history)")
    rollback.add_argument("version", help="a version from `emerald models`")
    rollback.add_argument("--reason", default=None, help="why, kept in the history")
    rollback.add_argument("--json", action="store_true")
    rollback.set_defaults(func=_rollback)

    lineage = subparsers.add_parser(
        "lineage", help="what a pushed version was trained on, from MLMD: nights and image "
                        "counts, the spans' manifests, the TFX run and the DAG run")
    lineage.add_argument("version", help="a version from `emerald models`")
    lineage.add_argument("--json", action="store_true")
    lineage.set_defaults(func=_lineage)

    predict = subparsers.add_parser(
        "predict", help="the serving model's label and scores for image files "
                        f"(exit {PREDICT_FAILED_EXIT} if any image has no answer)")
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="a JPEG/PNG path or gs://")
    predict.add_argument("--version", default=None, help="another pushed version than CURRENT")
    predict.add_argument("--json", action="store_true")
    predict.set_defaults(func=_predict)
