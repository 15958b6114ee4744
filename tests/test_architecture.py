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


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


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
    gate = _imports(REPO / "pipeline_src" / "gate.py")
    report = _imports(REPO / "pipeline_src" / "report.py")
    assert "pipeline_src.report" not in gate and not any("report" in n for n in gate)
    assert "pipeline_src.gate" not in report


def test_runtime_templates_and_node_ids_are_spelled_in_one_place():
    """`{{ params... night ... }}` and the run id template live in pipeline_src/names.py only."""
    spelled = {}
    for path in list(SOURCES) + sorted((REPO / "plugins").rglob("*.py")):
        text = path.read_text()
        for needle in ("{{ run_id }}.{{ dag_run.id }}", "or ds }}", "force_push', False) }}",
                       '"ImageDistributionValidator"', '"LatestBlessedModelResolver"',
                       '"/emerald-reports'):
            if needle in text:
                spelled.setdefault(needle, []).append(str(path.relative_to(REPO)))
    assert spelled and all(files == ["pipeline_src/names.py"] for files in spelled.values()), \
        spelled
