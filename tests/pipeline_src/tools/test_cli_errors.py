"""Bad input and misuse: one clear line on stderr, no traceback, a non-zero exit, nothing lost.

Each case runs the real `emerald` command in a subprocess with a fresh
EMERALD_HOME, as a user would type it. They stay fast because every one of
these mistakes is caught before TensorFlow, TFX or Airflow is imported.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import emerald_testing as testing
from pipeline_src.tools import cli

REPO = Path(__file__).resolve().parents[3]
NIGHT = "2026-01-02"


def emerald(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """`emerald ARGS` with EMERALD_HOME=home, none of the caller's EMERALD_* or Airflow settings."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("EMERALD", "AIRFLOW", "STORAGE_EMULATOR"))}
    clean.update(EMERALD_HOME=str(home), **env)
    return subprocess.run([sys.executable, "-m", "pipeline_src.tools.cli", *args], cwd=REPO,
                          env=clean, capture_output=True, text=True, timeout=120)


def one_clear_line(proc: subprocess.CompletedProcess, *fragments: str, code: int = 2) -> str:
    """The last line of stderr, asserted to be the whole story: exit code, no traceback."""
    assert proc.returncode == code, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    for fragment in fragments:
        assert fragment in last, (fragment, last)
    return last


def source_with(tmp_path: Path, *, corpus: bool = True, night: bool = True) -> Path:
    root = tmp_path / "source"
    root.mkdir()
    if night:
        testing.write_tree(root / "toto" / NIGHT, {"lion/a.jpg": testing.jpeg(),
                                                   "tiger/b.png": testing.png()})
    if corpus:
        testing.write_tree(root / "corpus", {"bear/c.jpg": testing.jpeg((32, 32))})
    return root


def tree(root: Path) -> dict[str, bytes]:
    """Every file under root but ingestion's lock files: what a reader of the spans sees."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.endswith(".lock")} if root.exists() else {}


# --------------------------------------------------------------------------- dates

NIGHT_OPTIONS = ("--date", "--night", "--from-night")   # every option naming a night

@pytest.mark.parametrize("args", [
    ["run", "--date", "2026-13-45"],
    ["run", "--date", "yesterday"],
    ["ingest", "--date", "2026-02-30"],
    ["node", "--run-id", "r", "--night", "2026-1-2", "ImageExampleGen"],
    ["gate", "--run-id", "r", "--night", "tonight"],
    ["report", "--run-id", "r", "--night", "2026-00-10"],
    ["ack", "add", "--feature", "aspect_ratio", "--kind", "skew", "--from-night", "soon",
     "--reason", "r", "--by", "b"],
], ids=lambda args: " ".join(args[:2]))
def test_a_bad_night_is_argparses_one_line_error(tmp_path, args):
    bad = args[args.index(next(a for a in args if a in NIGHT_OPTIONS)) + 1]
    proc = emerald(tmp_path / "home", *args)
    line = one_clear_line(proc, f"{bad!r} is not a night: YYYY-MM-DD")
    assert line.startswith(f"emerald {args[0]}")          # argparse names the subcommand
    assert not (tmp_path / "home").exists()                 # nothing was started


def test_a_night_before_the_dags_start_date_is_refused_before_airflow(tmp_path):
    proc = emerald(tmp_path / "home", "run", "--date", "2025-12-31", "--json")
    one_clear_line(proc, "emerald: error: night 2025-12-31 is before the DAG's start_date "
                         "2026-01-01", "dag.start_date")
    assert proc.stdout == ""                                 # no summary, let alone "success"
    assert not (tmp_path / "home" / "airflow").exists()     # Airflow was never set up


# --------------------------------------------------------------------------- configuration

def test_a_malformed_config_file_is_one_line(tmp_path):
    bad = tmp_path / "emerald.yaml"
    bad.write_text((REPO / "include" / "emerald.yaml").read_text()
                   .replace("  owner: dorothy\n", "  owner: [dorothy\n"))
    proc = emerald(tmp_path / "home", "ingest", "--date", NIGHT, EMERALD_CONFIG=str(bad))
    one_clear_line(proc, "emerald: error: ", str(bad), "is not valid YAML")


def test_an_unknown_profile_is_one_line_naming_the_profiles(tmp_path):
    proc = emerald(tmp_path / "home", "run", "--date", NIGHT, EMERALD_PROFILE="nope")
    one_clear_line(proc, "emerald: error: unknown profile 'nope' (EMERALD_PROFILE)",
                   "docker, gcp")


def test_an_unknown_label_policy_in_the_config_is_one_line(tmp_path):
    bad = tmp_path / "emerald.yaml"
    bad.write_text((REPO / "include" / "emerald.yaml").read_text()
                   .replace("unknown_labels: ingest ", "unknown_labels: maybe ", 1))
    proc = emerald(tmp_path / "home", "ingest", "--date", NIGHT, EMERALD_CONFIG=str(bad))
    one_clear_line(proc, str(bad), "ingest.unknown_labels 'maybe' is not one of")


# --------------------------------------------------------------------------- sources

def test_a_missing_source_directory_is_one_line(tmp_path):
    proc = emerald(tmp_path / "home", "ingest", "--date", NIGHT,
                   "--source", str(tmp_path / "no-such-dir"))
    one_clear_line(proc, f"source directory {tmp_path / 'no-such-dir'} does not exist")


def test_a_source_without_a_corpus_is_one_line_unless_told(tmp_path):
    src = source_with(tmp_path, corpus=False)
    home = tmp_path / "home"
    proc = emerald(home, "ingest", "--date", NIGHT, "--source", str(src))
    one_clear_line(proc, f"no corpus under {src / 'corpus'}: ", "/corpus/{label}/{name}",
                   "--no-corpus")
    assert tree(home / "spans") == {}                              # nothing half-done
    alone = emerald(home, "ingest", "--date", NIGHT, "--source", str(src), "--no-corpus",
                    "--json")
    assert alone.returncode == 0, alone.stderr[-2000:]
    assert json.loads(alone.stdout.splitlines()[-1])["span_examples"] == 2


def test_a_corpus_gone_from_the_source_never_empties_the_corpus_span(tmp_path):
    src = source_with(tmp_path)
    home = tmp_path / "home"
    assert emerald(home, "ingest", "--date", NIGHT, "--source", str(src)).returncode == 0
    before = tree(home / "spans" / "corpus")
    (src / "corpus" / "bear" / "c.jpg").unlink()
    proc = emerald(home, "ingest", "--date", NIGHT, "--source", str(src))
    one_clear_line(proc, "lists no objects but", "refusing to empty the span")
    assert tree(home / "spans" / "corpus") == before and before


def test_a_night_with_no_uploads_is_one_line_and_keeps_other_nights(tmp_path):
    src = source_with(tmp_path)
    home = tmp_path / "home"
    assert emerald(home, "ingest", "--date", NIGHT, "--source", str(src)).returncode == 0
    before = tree(home / "spans" / "toto")
    proc = emerald(home, "ingest", "--date", "2026-01-03", "--source", str(src))
    one_clear_line(proc, f"no objects under {src / 'toto' / '2026-01-03'}")
    assert tree(home / "spans" / "toto") == before and before


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    with testing.gcs_emulator(tmp_path_factory.mktemp("emulator") / "emulator.log") as url:
        yield url


def test_a_missing_bucket_is_one_line(tmp_path, emulator):
    proc = emerald(tmp_path / "home", "ingest", "--date", NIGHT, STORAGE_EMULATOR_HOST=emulator,
                   EMERALD_SOURCE="gs://no-such-bucket/cam")
    one_clear_line(proc, "emerald: error: bucket 'no-such-bucket' does not exist "
                         "(listing gs://no-such-bucket/cam/corpus/)")
    assert tree(tmp_path / "home" / "spans") == {}


def test_a_bucket_without_a_corpus_is_one_line(tmp_path, emulator, monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator)
    client = testing.anonymous_client()
    client.create_bucket("toto-no-corpus")
    testing.upload_tree(client, "toto-no-corpus", f"cam/toto/{NIGHT}",
                        {"lion/a.jpg": testing.jpeg()})
    proc = emerald(tmp_path / "home", "ingest", "--date", NIGHT, STORAGE_EMULATOR_HOST=emulator,
                   EMERALD_SOURCE="gs://toto-no-corpus/cam")
    one_clear_line(proc, "no corpus under gs://toto-no-corpus/cam/corpus/")


# --------------------------------------------------------------------------- the one path

def run_main_with(monkeypatch, func) -> int:
    """cli.main on a parsed `emerald ingest` whose subcommand is `func`."""
    parser = cli.build_parser()
    args = parser.parse_args(["ingest", "--date", NIGHT])
    args.func = func
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    monkeypatch.setattr(parser, "parse_args", lambda argv=None: args)
    return cli.main([])


def test_a_bug_keeps_its_traceback(monkeypatch):
    """Only the user's mistakes are one line: anything else is raised for its traceback."""
    def broken(args):
        raise KeyError("a bug")

    with pytest.raises(KeyError, match="a bug"):
        run_main_with(monkeypatch, broken)


def test_a_multi_line_message_is_printed_on_one_line(monkeypatch, capsys):
    from pipeline_src.ingest import IngestError

    def fails(args):
        raise IngestError("worker 1 died on toto/x.jpg:\n  out of memory\n")

    assert run_main_with(monkeypatch, fails) == cli.USER_ERROR_EXIT
    assert capsys.readouterr().err == "emerald: error: worker 1 died on toto/x.jpg: out of memory\n"
