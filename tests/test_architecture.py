"""The layers point one way, modules stay small, and each shared name has one home."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PLUGIN_PACKAGES = sorted(p.name for p in (REPO / "plugins").iterdir()
                         if p.is_dir() and (p / "__init__.py").exists())
SOURCES = sorted((REPO / "pipeline_src").rglob("*.py"))
MAX_LINES = 500          # "no module of a thousand lines": the largest today is synth.py


# pipeline_src's layers, lowest first: a module imports only from its own layer or below.
LAYERS = (
    ("core", {"config", "names", "features", "images", "metadata", "locations", "arguments"}),
    ("domain", {"model", "validation", "ingest"}),
    ("components", {"components"}),
    ("decision", {"decision"}),
    ("serving", {"serving"}),            # push history, the serving pointer, predictions
    ("orchestration", {"orchestration"}),
    ("tools", {"tools"}),
)
RANK = {name: rank for rank, (_, names) in enumerate(LAYERS) for name in names}


def _imports(path: Path) -> set[str]:
    """Dotted names imported (`from a import b` gives `a` and `a.b`)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def _rank(dotted: str):
    parts = dotted.split(".")
    return RANK.get(parts[1]) if len(parts) > 1 and parts[0] == "pipeline_src" else None


def test_every_module_has_a_layer_and_the_layers_are_folders():
    homes = {p.relative_to(REPO / "pipeline_src").parts[0].removesuffix(".py") for p in SOURCES}
    assert homes - {"__init__"} == set(RANK), homes ^ set(RANK)
    for name in RANK:
        is_package = (REPO / "pipeline_src" / name).is_dir()
        assert is_package == (RANK[name] > 0), name       # only the shared core is flat


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_layers_only_point_down(path):
    own = _rank("pipeline_src." + ".".join(path.relative_to(REPO / "pipeline_src").parts))
    upward = sorted(name for name in _imports(path)
                    if (rank := _rank(name)) is not None and own is not None and rank > own)
    assert not upward, f"{path.relative_to(REPO)} imports from a higher layer: {upward}"


def test_the_plugin_packages_are_found():
    assert {"emerald_alerts", "emerald_dag", "emerald_gcs", "emerald_reports",
            "emerald_tfx"} <= set(PLUGIN_PACKAGES)
    assert len(SOURCES) > 20


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_pipeline_src_never_imports_the_airflow_plugins(path):
    wrong = {name for name in _imports(path) if name.split(".")[0] in PLUGIN_PACKAGES}
    assert not wrong, f"{path.relative_to(REPO)} imports {sorted(wrong)} from plugins/"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_modules_are_small_and_have_no_assert_on_the_production_path(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(REPO)}: {lines} lines"
    asserts = [node.lineno for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.Assert)]
    assert not asserts, f"{path.relative_to(REPO)}: assert on lines {asserts}"


def test_the_gate_decides_the_report_gathers_and_neither_imports_the_other():
    gate = _imports(REPO / "pipeline_src" / "decision" / "gate.py")
    report = _imports(REPO / "pipeline_src" / "decision" / "report.py")
    assert "pipeline_src.decision.report" not in gate
    assert "pipeline_src.decision.gate" not in report
    assert "pipeline_src.decision.report" in _imports(
        REPO / "pipeline_src" / "orchestration" / "tasks.py")     # composed above both


def test_runtime_templates_and_node_ids_are_spelled_in_one_place():
    """`{{ params... night ... }}` and the run id template live in pipeline_src/names.py only."""
    spelled = {}
    for path in list(SOURCES) + sorted((REPO / "plugins").rglob("*.py")):
        text = path.read_text()
        for needle in ("{{ run_id }}.{{ dag_run.id }}", "or ds }}", "force_push', False) }}",
                       '"ImageDistributionValidator"', '"ServingModelResolver"',
                       '"/emerald-reports'):
            if needle in text:
                spelled.setdefault(needle, []).append(str(path.relative_to(REPO)))
    assert spelled and all(files == ["pipeline_src/names.py"] for files in spelled.values()), \
        spelled
