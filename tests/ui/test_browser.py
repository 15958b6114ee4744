"""A user's night in the Airflow UI, in a real browser against a real local Airflow.

Log in, find `emerald_nightly`, trigger it with config {"night": "2026-01-01",
"corpus_only": true} through "Trigger DAG w/ config", wait for the run to succeed
(every task its own process, as the scheduler runs them), then open Emerald >
Emerald reports and read that night's accuracy, which must be the one the DAG's
report task wrote to {reports}/2026-01-01/summary.json. Screenshots of every
step land in test-artifacts/ui/.
"""
from __future__ import annotations

import base64
import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

DAG_ID = "emerald_nightly"
NIGHT = "2026-01-01"
RUN_TIMEOUT = 20 * 60

pytestmark = pytest.mark.slow


class Steps:
    """Numbered screenshots: test-artifacts/ui/01-login.png, ..."""

    def __init__(self, page, folder: Path):
        self.page, self.folder, self.n = page, folder, 0

    def shot(self, name: str) -> None:
        self.n += 1
        self.page.screenshot(path=str(self.folder / f"{self.n:02d}-{name}.png"), full_page=True)


def api(airflow, path: str, method: str = "GET", body: dict | None = None) -> dict:
    token = base64.b64encode(f"{airflow.user}:{airflow.password}".encode()).decode()
    request = urllib.request.Request(
        f"{airflow.url}/api/v1{path}", method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def task_states(airflow, run_id: str) -> str:
    try:
        tis = api(airflow, f"/dags/{DAG_ID}/dagRuns/{urllib.request.quote(run_id, safe='')}"
                           "/taskInstances?limit=100")["task_instances"]
    except Exception as exc:  # noqa: BLE001 - only for the failure message
        return f"(task states unavailable: {exc})"
    return "\n".join(f"  {t['task_id']:<28} {t['state']} (try {t['try_number']})"
                     for t in sorted(tis, key=lambda t: t["start_date"] or "~"))


def find_run(airflow) -> dict | None:
    runs = api(airflow, f"/dags/{DAG_ID}/dagRuns?order_by=-execution_date&limit=20")["dag_runs"]
    for run in runs:
        if (run.get("conf") or {}).get("night") == NIGHT:
            return run
    return None


def assert_drawn(charts, features: set) -> None:
    """Each chart is laid out by the browser at its size and draws marks (bars, lines)."""
    seen = set()
    for i in range(charts.count()):
        chart = charts.nth(i)
        box = chart.bounding_box()
        assert box and box["width"] >= 300 and box["height"] >= 150, box
        marks = chart.locator("rect, polyline, circle, line").count()
        assert marks >= 3, chart.get_attribute("data-feature")
        seen.add(chart.get_attribute("data-feature"))
    assert features <= seen, (features, seen)


def test_trigger_a_night_from_the_ui_and_read_its_report(local_airflow, browser_page, artifacts):
    airflow, page = local_airflow, browser_page
    steps = Steps(page, artifacts)
    started = time.monotonic()

    # Nothing without logging in: the reports page sends us to the login form.
    page.goto(f"{airflow.url}/emerald-reports/")
    assert "/login" in page.url, f"reports page reachable without login: {page.url}"
    steps.shot("login")
    page.fill("#username", airflow.user)
    page.fill("#password", airflow.password)
    page.click("input[type=submit]")
    page.wait_for_load_state()
    assert "/login" not in page.url, "login failed"

    # The DAG list shows the nightly DAG (an import error is the usual reason it doesn't).
    deadline = time.monotonic() + 180
    while True:
        try:
            api(airflow, f"/dags/{DAG_ID}")
            break
        except urllib.error.HTTPError as exc:
            if exc.code != 404 or time.monotonic() > deadline:
                errors = api(airflow, "/importErrors").get("import_errors", [])
                pytest.fail(f"{DAG_ID} is not in Airflow; import errors:\n"
                            + "\n".join(e["stack_trace"] for e in errors), pytrace=False)
        time.sleep(5)
    page.goto(f"{airflow.url}/home?search={DAG_ID}")
    dag_link = page.locator(f"a[href*='/dags/{DAG_ID}/grid']").first
    dag_link.wait_for()
    steps.shot("dag-list")
    dag_link.click()
    page.wait_for_load_state()
    steps.shot("dag-grid")

    # Trigger DAG w/ config: the DAG's params are form fields feeding the conf JSON.
    page.goto(f"{airflow.url}/dags/{DAG_ID}/trigger")
    page.fill("#element_night", NIGHT)
    page.keyboard.press("Escape")                      # close the date picker
    page.check("#element_corpus_only", force=True)     # the switch hides the checkbox
    page.locator("h2, h3").first.click()               # blur: the form updates the JSON
    conf = json.loads(page.evaluate(
        "() => { const cm = document.querySelector('.CodeMirror');"
        " return cm ? cm.CodeMirror.getValue() : document.querySelector('#json').value; }"))
    assert conf["night"] == NIGHT and conf["corpus_only"] is True, conf
    unpause = page.locator("#unpause")
    if unpause.count() and not unpause.is_checked():
        unpause.check(force=True)
    steps.shot("trigger-form")
    page.click("button[type=submit]:has-text('Trigger')")
    page.wait_for_load_state()
    steps.shot("triggered")

    run = find_run(airflow)
    assert run is not None, "the trigger form created no run with our conf"
    assert run["conf"].get("corpus_only") is True
    run_id = run["dag_run_id"]
    if api(airflow, f"/dags/{DAG_ID}")["is_paused"]:
        api(airflow, f"/dags/{DAG_ID}?update_mask=is_paused", "PATCH", {"is_paused": False})

    # Wait for the run (each task imports TFX in its own process: minutes).
    deadline = time.monotonic() + RUN_TIMEOUT
    state, last_shot = run["state"], 0.0
    while True:
        try:
            state = api(airflow, f"/dags/{DAG_ID}/dagRuns/"
                                 f"{urllib.request.quote(run_id, safe='')}")["state"]
        except (urllib.error.URLError, OSError):
            pass                                       # the webserver is busy: ask again
        if state in ("success", "failed"):
            break
        if time.monotonic() > deadline:
            steps.shot("run-timeout")
            pytest.fail(f"run {run_id} still {state} after {RUN_TIMEOUT // 60} min; tasks:\n"
                        + task_states(airflow, run_id), pytrace=False)
        if time.monotonic() - last_shot > 120:
            page.goto(f"{airflow.url}/dags/{DAG_ID}/grid?dag_run_id="
                      f"{urllib.request.quote(run_id, safe='')}")
            page.wait_for_load_state()
            steps.shot("run-progress")
            last_shot = time.monotonic()
        time.sleep(10)
    run_minutes = (time.monotonic() - started) / 60
    page.goto(f"{airflow.url}/dags/{DAG_ID}/grid?dag_run_id={urllib.request.quote(run_id, safe='')}")
    page.wait_for_load_state()
    steps.shot(f"run-{state}")
    assert state == "success", f"run {run_id} {state}; tasks:\n" + task_states(airflow, run_id)

    # What the DAG's report task wrote.
    summary_file = airflow.reports / NIGHT / "summary.json"
    assert summary_file.is_file(), f"the run wrote no {summary_file}"
    summary = json.loads(summary_file.read_text())
    overall = summary["accuracy"]["overall"]
    assert overall is not None, summary

    # Emerald > Emerald reports, through the menu.
    page.goto(f"{airflow.url}/home")
    page.click("a.dropdown-toggle:has-text('Emerald')")
    page.click("a:has-text('Emerald reports')")
    page.wait_for_load_state()
    row = page.locator(f"#night-{NIGHT}")
    row.wait_for()
    steps.shot("reports")
    shown = row.locator(f".emerald-accuracy[data-night='{NIGHT}']").inner_text().strip()
    assert re.fullmatch(r"[01]\.\d{3}", shown), shown
    assert float(shown) == pytest.approx(overall, abs=5e-4)
    assert summary["accuracy"]["slices"], summary["accuracy"]   # source, orientation, hour
    for slice_key, value in summary["accuracy"]["slices"].items():
        cell = row.locator(f".emerald-slice[data-slice='{slice_key}']")
        assert cell.inner_text().strip() == f"{value:.3f}", slice_key
    assert row.locator(".emerald-blessed").inner_text().strip() == (
        "yes" if summary["blessed"] else "no")

    # The trend over the nights, one chart per compared property, drawn by the browser.
    skew = [c for c in summary["validation"]["comparisons"] if c["kind"] == "skew"]
    assert len(skew) == 9, skew
    trends = page.locator(".emerald-trends[data-kind='skew'] svg.emerald-trend")
    assert trends.count() == len(skew)
    assert_drawn(trends, {c["feature"] for c in skew})
    trends.first.scroll_into_view_if_needed()
    steps.shot("reports-trends")

    # The night's page embeds its full report, with a histogram per comparison.
    row.locator(f"a:has-text('{NIGHT}')").click()
    page.wait_for_load_state()
    assert page.url.endswith(f"/emerald-reports/night/{NIGHT}")
    frame = page.frame_locator("#emerald-report")
    frame.locator("body").wait_for()
    assert NIGHT in frame.locator("body").inner_text()
    histograms = frame.locator("svg.emerald-histogram")
    assert histograms.count() == len(summary["validation"]["comparisons"])
    assert_drawn(histograms, {c["feature"] for c in skew})
    assert frame.locator("svg.emerald-trend").count() == len(summary["validation"]["comparisons"])
    steps.shot("night-report")
    histograms.first.scroll_into_view_if_needed()
    steps.shot("night-report-histograms")

    # Accuracy per slice tonight and over the nights: on the night's page and in its report.
    for where in (page, frame):
        accuracy = where.locator("svg.emerald-slice-accuracy, svg.emerald-accuracy-trend")
        assert accuracy.count() == 2
        assert_drawn(accuracy, {"accuracy"})
        bars = where.locator("svg.emerald-slice-accuracy rect.bar-accuracy")
        assert bars.count() == 1 + len(summary["accuracy"]["slices"])   # overall and each slice
    page.locator("svg.emerald-slice-accuracy").scroll_into_view_if_needed()
    steps.shot("night-accuracy")
    frame.locator("svg.emerald-slice-accuracy").scroll_into_view_if_needed()
    steps.shot("night-report-accuracy")

    # The "Night report" button on Evaluator.
    links = api(airflow, f"/dags/{DAG_ID}/dagRuns/{urllib.request.quote(run_id, safe='')}"
                         "/taskInstances/Evaluator/links")
    assert links.get("Night report", "").endswith(f"/emerald-reports/night/{NIGHT}"), links

    (artifacts / "timing.json").write_text(json.dumps(
        {"run_id": run_id, "minutes_until_run_finished": round(run_minutes, 1),
         "accuracy_overall": overall}, indent=1))
