"""`emerald config [--json]`: the effective configuration, as every task will see it.

The YAML file, the profile merged over it and the EMERALD_* environment applied:
what `load_config()` returns, so a user can see where every span, model and
report lives before a night runs (on a laptop or in a Composer pod) instead of
reading three files and the environment by hand. Only names of secrets are in
the configuration (the MLMD password's variable, the Airflow connection ids),
never their values, so the output is safe to paste.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from pathlib import Path
from typing import Any, Iterator, Mapping

from pipeline_src.config import Config, load_config

# What load_config() reads from the environment (config.py documents each).
ENVIRONMENT = ("EMERALD_CONFIG", "EMERALD_PROFILE", "EMERALD_HOME", "EMERALD_SOURCE",
               "EMERALD_NODE_RUNNER", "EMERALD_ALERT_EMAILS", "EMERALD_ACKNOWLEDGMENTS")


def plain(value: Any) -> Any:
    """The configuration as JSON types: dataclasses and mappings as objects, paths and
    dates as strings, tuples as lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (Path, dt.date)):
        return str(value)
    return value


def effective(config: Config, env: Mapping[str, str]) -> dict[str, Any]:
    """The configuration, with the environment variables that shaped it."""
    return {**plain(config),
            "environment": {name: env[name] for name in ENVIRONMENT if name in env}}


def lines(tree: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """`section.key: value`, one setting a line (lists inline), for reading and grep."""
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from lines(value, name + ".")
        else:
            yield f"{name}: {json.dumps(value)}"


def _run(args) -> int:
    tree = effective(load_config(), os.environ)
    if args.json:
        print(json.dumps(tree, indent=1))
    else:
        print("\n".join(lines(tree)))
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "config", help="print the effective configuration (profile merged, environment applied)")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.set_defaults(func=_run)
