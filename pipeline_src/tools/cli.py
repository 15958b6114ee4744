"""The `emerald` command: one subcommand per module, each registered by that module.

Heavy imports (TensorFlow, TFX, Airflow) happen inside the subcommands, so
`emerald --help` stays instant.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

# Modules that contribute a subcommand through `register(subparsers)`.
SUBCOMMAND_MODULES = (
    "pipeline_src.tools.synth",
    "pipeline_src.ingest",
    "pipeline_src.orchestration.compile",
    "pipeline_src.orchestration.node",
    "pipeline_src.orchestration.night",
    "pipeline_src.orchestration.tasks",
    "pipeline_src.decision.acknowledgments",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emerald", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
