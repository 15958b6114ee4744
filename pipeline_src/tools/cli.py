"""The `emerald` command: one subcommand per module, each registered by that module.

Heavy imports (TensorFlow, TFX, Airflow) happen inside the subcommands, so
`emerald --help` stays instant.

One path for the user's mistakes: every option naming a night is declared
with `type=config.night_arg`, so argparse checks it as it parses (its one-line
usage error, exit 2), and the project's user-facing errors (ConfigError, UsageError, IngestError)
raised by a subcommand are printed as one line, `emerald: error: ...`, exit 2.
Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

from pipeline_src.config import ConfigError, UsageError
from pipeline_src.ingest.errors import IngestError

# Modules that contribute a subcommand through `register(subparsers)`.
SUBCOMMAND_MODULES = (
    "pipeline_src.tools.synth",
    "pipeline_src.ingest",
    "pipeline_src.orchestration.compile",
    "pipeline_src.orchestration.node",
    "pipeline_src.orchestration.night",
    "pipeline_src.orchestration.tasks",
    "pipeline_src.decision.acknowledgments",
    "pipeline_src.tools.show_config",
    "pipeline_src.serving.cli",
)

# What the user can fix: one line, no traceback.
USER_ERRORS = (ConfigError, UsageError, IngestError)
USER_ERROR_EXIT = 2          # argparse's own exit code for a usage error


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emerald", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def one_line(exc: BaseException) -> str:
    """The error's message on one line (a worker's quoted stderr may span several)."""
    return " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) \
        or type(exc).__name__


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as exc:
        sys.stdout.flush()
        print(f"emerald: error: {one_line(exc)}", file=sys.stderr, flush=True)
        return USER_ERROR_EXIT


if __name__ == "__main__":
    sys.exit(main())
