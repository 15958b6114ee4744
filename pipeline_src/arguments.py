"""Command-line values checked as argparse parses them, before anything heavy is imported."""
from __future__ import annotations

import datetime as dt


def night_arg(value: str) -> str:
    """argparse `type=` for a night: a real YYYY-MM-DD date, returned unchanged.

    Checked when the arguments are parsed, so `--date yesterday` is argparse's own
    one-line error (exit 2) before anything heavy is imported, and the subcommand
    still receives the string it expects.
    """
    import argparse

    try:
        dt.date.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        reason = "" if "isoformat" in str(exc) else f" ({exc})"
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a night: YYYY-MM-DD, a real date{reason}") from None
    return value
