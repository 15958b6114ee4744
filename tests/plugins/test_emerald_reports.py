"""The Emerald reports plugin: listing, safe lookup of a night's report, the "Night report" link."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.exceptions import NotFound

from emerald_reports import links, reports

REPO = Path(__file__).resolve().parents[2]

SUMMARY = {
    "date": "2026-01-02", "state": "success", "tfx_run_id": "manual__2026-01-02.7",
    "splits": {"train": 120, "eval": 36},
    "anomalies": [{"where": "eval", "feature": "label", "type": "ENUM_TYPE_UNEXPECTED_STRING_VALUES",
                   "description": "Examples contain values missing from the schema: zebra"}],
    "skew": [{"where": "eval-train", "feature": "aspect_ratio",
              "type": "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH", "description": "...",
              "value": 0.61, "threshold": 0.2}],
    "drift": [],
    "accuracy": {"overall": 0.8125, "slices": {"source=toto": 0.7, "source=corpus": 0.9}},
    "blessed": True, "pushed": True, "pushed_version": "1767319200", "push_blocked": None,
}


def write_night(root: Path, night: str, summary: dict | None = None, html: str | None = None):
    folder = root / night
    folder.mkdir(parents=True)
    if summary is not None:
        (folder / "summary.json").write_text(json.dumps(summary))
    if html is not None:
        (folder / "report.html").write_text(html)
    return folder


@pytest.fixture
def root(tmp_path) -> Path:
    root = tmp_path / "reports"
    write_night(root, "2026-01-02", SUMMARY, "<h1>night 2 report</h1>")
    write_night(root, "2026-01-01", dict(SUMMARY, date="2026-01-01", anomalies=[], skew=[],
                                         blessed=False, pushed=False, pushed_version=None,
                                         accuracy={"overall": None, "slices": {}}))
    write_night(root, "2026-01-03")                      # a run still going: no summary yet
    (root / "2026-01-04").mkdir()
    (root / "2026-01-04" / "summary.json").write_text("{not json")   # a torn write
    (root / "notes").mkdir()                             # not a night
    (root / "2026-13-40").mkdir()                        # not a date
    return root


def test_lists_nights_newest_first_with_findings_metrics_and_model(root):
    nights = reports.list_summaries(root)
    assert [n["night"] for n in nights] == ["2026-01-02", "2026-01-01"]
    night2 = nights[0]
    assert [f["kind"] for f in night2["findings"]] == ["anomalies", "skew"]
    assert night2["findings"][1]["value"] == 0.61
    assert night2["accuracy"]["overall"] == 0.8125
    assert list(night2["accuracy"]["slices"]) == ["source=corpus", "source=toto"]
    assert night2["blessed"] and night2["pushed_version"] == "1767319200"
    assert night2["has_report"] is True
    assert nights[1]["has_report"] is False and nights[1]["findings"] == []


def test_a_missing_reports_folder_lists_nothing(tmp_path):
    assert reports.list_summaries(tmp_path / "absent") == []


@pytest.mark.parametrize("night", [
    "../2026-01-02", "2026-01-02/../2026-01-02", "..", ".", "", "/etc/passwd", "2026-01-02\x00",
    "2026-1-2", "2026-13-40", "notes", "2026-01-05", None, 20260102,
])
def test_unknown_or_malformed_nights_are_refused(root, night):
    assert night not in reports.known_nights(root)
    assert reports.report_html(root, night) is None
    assert reports.load_summary(root, night) is None


def test_a_symlinked_night_pointing_outside_is_refused(root, tmp_path):
    outside = tmp_path / "outside"
    write_night(outside, "x", SUMMARY, "<h1>secret</h1>")
    (root / "2026-02-01").symlink_to(outside / "x")
    assert "2026-02-01" not in reports.known_nights(root)
    assert reports.report_html(root, "2026-02-01") is None
    assert reports.load_summary(root, "2026-02-01") is None


def test_a_symlinked_report_file_is_not_served(root, tmp_path):
    secret = tmp_path / "secret.html"
    secret.write_text("<h1>secret</h1>")
    (root / "2026-01-01" / "report.html").symlink_to(secret)
    assert reports.report_html(root, "2026-01-01") is None


def test_report_response_serves_a_known_night_sandboxed_and_404s_otherwise(root):
    from emerald_reports.views import report_response

    app = Flask(__name__)
    with app.test_request_context():
        response = report_response(root, "2026-01-02")
        response.direct_passthrough = False
        assert response.status_code == 200
        assert response.mimetype == "text/html"
        assert b"night 2 report" in response.get_data()
        assert response.headers["Content-Security-Policy"].startswith("sandbox")
        for night in ("../2026-01-02", "2026-01-01", "2026-01-05", "..%2F..%2Fetc"):
            with pytest.raises(NotFound):
                report_response(root, night)


def test_templates_render_the_listing_and_a_night(root):
    """The page templates with a stand-in for Airflow's base template."""
    import jinja2

    templates = REPO / "plugins" / "emerald_reports" / "templates"
    env = jinja2.Environment(loader=jinja2.ChoiceLoader([
        jinja2.FileSystemLoader(str(templates)),
        jinja2.DictLoader({"base.html": "{% block content %}{% endblock %}"})]),
        autoescape=True)
    env.globals["url_for"] = lambda endpoint, **kw: f"/{endpoint}/{kw.get('night', '')}"
    html = env.get_template("emerald_reports/index.html").render(
        base_template="base.html", nights=reports.list_summaries(root), reports_dir=str(root),
        fmt=reports.fmt_metric)
    assert 'id="night-2026-01-02"' in html and 'id="night-2026-01-01"' in html
    assert 'data-night="2026-01-02">0.812<' in html      # overall accuracy, 3 decimals
    assert 'data-slice="source=toto">0.700<' in html
    assert "1767319200" in html and "aspect_ratio" in html and "0.610 &gt; 0.200" in html
    night = env.get_template("emerald_reports/night.html").render(
        base_template="base.html", s=reports.load_summary(root, "2026-01-02"), fmt=reports.fmt_metric)
    assert 'sandbox=""' in night and "/EmeraldReportsView.report/2026-01-02" in night


def test_html_in_a_summary_is_escaped(root):
    """Jinja escapes the fields; the trend charts, inserted `|safe`, escape their own labels."""
    import jinja2

    script = "<script>alert(1)</script>"
    write_night(root, "2026-01-09", dict(
        SUMMARY, anomalies=[{"where": "eval", "feature": script, "type": "X", "description": ""}],
        splits={script: 3}, tfx_run_id=script,
        accuracy={"overall": 0.5, "slices": {f"label={script}": 0.5}},
        validation={"comparisons": [_comparison(script, 0.9, True)]}))
    templates = REPO / "plugins" / "emerald_reports" / "templates"
    env = jinja2.Environment(loader=jinja2.ChoiceLoader([
        jinja2.FileSystemLoader(str(templates)),
        jinja2.DictLoader({"base.html": "{% block content %}{% endblock %}"})]), autoescape=True)
    env.globals["url_for"] = lambda endpoint, **kw: "/"
    nights = reports.list_summaries(root)
    pages = [env.get_template("emerald_reports/index.html").render(
        base_template="base.html", nights=nights, trends=reports.trend_charts(nights),
        reports_dir="r", fmt=reports.fmt_metric),
        env.get_template("emerald_reports/night.html").render(
        base_template="base.html", s=reports.load_summary(root, "2026-01-09"),
        accuracy=reports.accuracy_charts(root, reports.load_summary(root, "2026-01-09")),
        fmt=reports.fmt_metric)]
    assert 'class="emerald-trends"' in pages[0]             # the |safe charts are there
    assert 'class="emerald-slice-accuracy"' in pages[1] and 'class="emerald-accuracy-trend"' in pages[1]
    for html in pages:
        assert "<script" not in html and "&lt;script&gt;" in html
        assert "label=&lt;script&gt;" in html


def test_the_night_page_trend_covers_the_nights_up_to_that_one(root):
    """2026-01-01 (not evaluated) and 2026-01-02; 2026-01-03 has no summary, 2026-01-09 is later."""
    write_night(root, "2026-01-09", dict(SUMMARY, date="2026-01-09"))
    html = reports.accuracy_charts(root, reports.load_summary(root, "2026-01-02"))
    assert "over the last 2 night(s)" in html and "last 2 nights, 1 not evaluated" in html


def _comparison(feature, effect, fired, kind="skew", acknowledged=None):
    return {"kind": kind, "feature": feature, "baseline": "training", "effect": effect,
            "effect_name": "KS distance", "min_effect": 0.3, "p_value": 1e-4, "alpha": 5e-4,
            "n_tonight": 36, "n_baseline": 120, "fired": fired, "significant": fired,
            "acknowledged": acknowledged,
            "details": {"histogram": {"values": [0.75, 1.33], "tonight": [1, 0],
                                      "baseline": [0, 1]}}}


def _night_with_findings(date, effect, blocking, acknowledged=None):
    fired = effect > 0.3
    findings = [] if not fired else [{
        "kind": "skew", "feature": "aspect_ratio", "anomaly": "Kolmogorov-Smirnov",
        "where": "training", "value": effect, "threshold": 0.3, "blocking": blocking,
        "acknowledged": acknowledged, "message": "aspect_ratio: KS distance ..."}]
    return dict(SUMMARY, date=date, findings=findings, validation={"comparisons": [
        _comparison("aspect_ratio", effect, fired, acknowledged=acknowledged),
        _comparison("brightness", 0.1, False)]})


def _render_index(root):
    import jinja2

    templates = REPO / "plugins" / "emerald_reports" / "templates"
    env = jinja2.Environment(loader=jinja2.ChoiceLoader([
        jinja2.FileSystemLoader(str(templates)),
        jinja2.DictLoader({"base.html": "{% block content %}{% endblock %}"})]), autoescape=True)
    env.globals["url_for"] = lambda endpoint, **kw: "/"
    nights = reports.list_summaries(root)
    return env.get_template("emerald_reports/index.html").render(
        base_template="base.html", nights=nights, trends=reports.trend_charts(nights),
        reports_dir="r", fmt=reports.fmt_metric)


def test_findings_are_shown_as_the_gate_wrote_them_blocking_or_acknowledged(tmp_path):
    root = tmp_path / "reports"
    write_night(root, "2026-01-02", _night_with_findings("2026-01-02", 0.9, blocking=True))
    write_night(root, "2026-01-03", _night_with_findings(
        "2026-01-03", 0.8, blocking=False, acknowledged="acknowledged by dorothy"))
    html = _render_index(root)
    night2 = html.split('id="night-2026-01-02"')[1]
    night3 = html.split('id="night-2026-01-03"')[1].split('id="night-2026-01-02"')[0]
    assert 'label-danger">skew (blocks)' in night2          # a blocking skew is red, not yellow
    assert 'label-info">skew (acknowledged)' in night3
    assert reports.load_summary(root, "2026-01-02")["findings"][0]["type"] == "Kolmogorov-Smirnov"


def test_the_index_shows_a_trend_chart_per_property_with_every_night(tmp_path):
    import xml.etree.ElementTree as ET

    root = tmp_path / "reports"
    for day, effect in ((1, 0.05), (2, 0.9), (3, 0.1)):
        write_night(root, f"2026-01-0{day}", _night_with_findings(f"2026-01-0{day}", effect, True))
    html = _render_index(root)
    section = html.split('class="emerald-trends" data-kind="skew"')[1].split("</div>")[0]
    charts = [ET.fromstring(svg.split("</svg>")[0] + "</svg>")
              for svg in ("<svg" + part for part in section.split("<svg")[1:])]
    assert [c.get("data-feature") for c in charts] == ["aspect_ratio", "brightness"]
    markers = [el for el in charts[0].iter() if el.tag.endswith("circle")]
    assert len(markers) >= 3                                 # one per night
    assert 'data-kind="drift"' not in html                   # no drift comparisons: no chart


# --------------------------------------------------------------------------- #
# The "Night report" link
# --------------------------------------------------------------------------- #
def test_night_comes_from_the_rendered_field_then_the_conf_then_the_logical_date():
    logical = dt.datetime(2026, 1, 7, 2, tzinfo=dt.timezone.utc)
    assert links.resolve_night("2026-01-05", {"night": "2026-01-06"}, logical) == "2026-01-05"
    assert links.resolve_night(None, {"night": "2026-01-06"}, logical) == "2026-01-06"
    assert links.resolve_night("{{ params.night or ds }}", {"night": None}, logical) == "2026-01-07"
    assert links.resolve_night(None, {"night": "../../etc"}, logical) == "2026-01-07"
    assert links.resolve_night(None, None, None) is None


def test_link_url_outside_the_webserver_is_built_from_the_base_url(monkeypatch):
    """No Flask app (CLI, alerts): the path is built from [webserver] base_url's path."""
    monkeypatch.setenv("AIRFLOW__WEBSERVER__BASE_URL", "http://localhost:8080")
    assert links.night_report_url("2026-01-02") == "/emerald-reports/night/2026-01-02"
    monkeypatch.setenv("AIRFLOW__WEBSERVER__BASE_URL", "https://composer.example/airflow/")
    assert links.night_report_url("2026-01-02") == "/airflow/emerald-reports/night/2026-01-02"


_FAB_APP_PROBE = r"""
import importlib, json, os
from flask import Flask
from flask_appbuilder import AppBuilder, SQLA
from emerald_reports import links

plugin = importlib.import_module("emerald_reports.emerald_reports_plugin").EmeraldReportsPlugin
(view,) = plugin.appbuilder_views
app = Flask(__name__)
app.config.update(SQLALCHEMY_DATABASE_URI="sqlite://", SQLALCHEMY_TRACK_MODIFICATIONS=False,
                  SECRET_KEY="test", FAB_UPDATE_PERMS=False)
db = SQLA(app)
with app.app_context():
    appbuilder = AppBuilder(app, db.session)
    appbuilder.add_view(view["view"], view["name"], category=view["category"])
with app.test_request_context("/", base_url="http://webserver/airflow"):
    url = links.night_report_url("2026-01-02")
endpoint, args = app.url_map.bind("webserver", script_name="/airflow").match(url[len("/airflow"):])
print("PROBE" + json.dumps({"url": url, "endpoint": endpoint, "args": args}))
"""


def test_link_url_inside_the_webserver_is_the_registered_route_of_the_view(monkeypatch):
    """Inside a request, the URL is url_for's answer for the view's real route, not the fallback.

    A real Flask-AppBuilder app (in-memory SQLite), with the plugin's view added as Airflow
    adds `appbuilder_views`, in a fresh process: FAB's security models may be declared only
    once per process, and an Airflow database made earlier in the session declares them.
    The app is mounted under /airflow (SCRIPT_NAME) while [webserver] base_url has no path,
    so the fallback would say /emerald-reports/...: only url_for knows the prefix.
    """
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    env = dict(os.environ, AIRFLOW__WEBSERVER__BASE_URL="http://localhost:8080",
               PYTHONPATH=os.pathsep.join([str(repo / "plugins"), str(repo)]))
    proc = subprocess.run([sys.executable, "-c", _FAB_APP_PROBE], env=env, capture_output=True,
                          text=True, timeout=300, cwd=repo)
    assert "PROBE" in proc.stdout, proc.stderr[-4000:]
    found = json.loads(proc.stdout.split("PROBE", 1)[1])
    assert found["url"] == "/airflow/emerald-reports/night/2026-01-02"
    # The URL leads back to the view's `night` page with that night.
    assert (found["endpoint"], found["args"]) == ("EmeraldReportsView.night",
                                                  {"night": "2026-01-02"})


def test_link_url_follows_the_route_wherever_the_view_is_registered(monkeypatch):
    """The view's own blueprint (its exposed routes) under another base: url_for must win."""
    from emerald_reports.views import EmeraldReportsView

    monkeypatch.setenv("AIRFLOW__WEBSERVER__BASE_URL", "http://localhost:8080")
    app = Flask(__name__)
    blueprint = EmeraldReportsView().create_blueprint(appbuilder=None)
    app.register_blueprint(blueprint, url_prefix="/elsewhere/reports")
    with app.test_request_context("/"):
        assert links.night_report_url("2026-01-02") == "/elsewhere/reports/night/2026-01-02"


def test_get_link_uses_the_looked_up_night_and_is_empty_without_one(monkeypatch):
    link = links.NightReportLink()
    assert link.name == "Night report"
    monkeypatch.setattr(links, "_lookup_night", lambda ti_key: "2026-01-03")
    assert link.get_link(None, ti_key=object()).endswith("/emerald-reports/night/2026-01-03")
    monkeypatch.setattr(links, "_lookup_night", lambda ti_key: None)
    assert link.get_link(None, ti_key=object()) == ""

    def broken(ti_key):
        raise RuntimeError("no database")
    monkeypatch.setattr(links, "_lookup_night", broken)
    assert link.get_link(None, ti_key=object()) == ""


def test_the_link_finds_each_task_instances_night_in_airflows_database(
        airflow_db, emerald_home, monkeypatch):
    """No stand-in for the lookup: the DAG's real runs, task instances and rendered
    template fields in a real metadata database, and the link as the webserver calls it
    (the serialized DAG's operator, `get_extra_links(ti, "Night report")`)."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.taskinstancekey import TaskInstanceKey
    from airflow.serialization.serialized_objects import SerializedDAG
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunType

    from emerald_dag.builder import build_nightly_dag
    from pipeline_src.config import load_config

    monkeypatch.setenv("AIRFLOW__WEBSERVER__BASE_URL", "http://localhost:8080")
    config = load_config()
    dag = build_nightly_dag(config)
    served = SerializedDAG.from_dict(SerializedDAG.to_dict(dag))

    def fresh_task(task_id: str):
        """A worker renders its own copy of the task (rendering writes into the operator)."""
        return build_nightly_dag(config).get_task(task_id)

    def dag_run(day: int, run_type: DagRunType, conf: dict):
        logical = dt.datetime(2026, 1, day, 2, tzinfo=dt.timezone.utc)
        return dag.create_dagrun(
            run_id=f"{run_type.value}__{logical.isoformat()}", run_type=run_type,
            execution_date=logical, data_interval=(logical, logical + dt.timedelta(days=1)),
            state=DagRunState.RUNNING, conf=conf, external_trigger=run_type == DagRunType.MANUAL)

    # Night 3 run again by hand on the 7th (Trigger DAG w/ config), and the 6th's own run.
    rerun = dag_run(7, DagRunType.MANUAL, {"night": "2026-01-03"})
    scheduled = dag_run(6, DagRunType.SCHEDULED, {})
    # The Evaluator ran in both: Airflow rendered its templates and stored them.
    with create_session() as session:
        for run in (rerun, scheduled):
            ti = run.get_task_instance("Evaluator", session=session)
            ti.refresh_from_task(fresh_task("Evaluator"))
            session.merge(RenderedTaskInstanceFields(ti, render_templates=True))
    with create_session() as session:
        stored = {row.run_id: row.rendered_fields["night"]
                  for row in session.query(RenderedTaskInstanceFields)}
    assert stored == {rerun.run_id: "2026-01-03", scheduled.run_id: "2026-01-06"}

    def link(run, task_id: str) -> str:
        return served.task_dict[task_id].get_extra_links(
            run.get_task_instance(task_id), links.LINK_NAME)

    assert link(rerun, "Evaluator") == "/emerald-reports/night/2026-01-03"
    assert link(scheduled, "Evaluator") == "/emerald-reports/night/2026-01-06"
    # The gate has not run yet (nothing rendered): the run's conf, else its logical date.
    assert link(rerun, "data_gate") == "/emerald-reports/night/2026-01-03"
    assert link(scheduled, "data_gate") == "/emerald-reports/night/2026-01-06"
    # What the task rendered wins over the run's conf: it is the night the task used.
    with create_session() as session:
        ti = scheduled.get_task_instance("ExampleValidator", session=session)
        ti.refresh_from_task(fresh_task("ExampleValidator"))
        session.merge(RenderedTaskInstanceFields(
            ti, render_templates=False, rendered_fields={"night": "2026-01-05"}))
    assert link(scheduled, "ExampleValidator") == "/emerald-reports/night/2026-01-05"
    # A task instance the database does not know: no target, and no error.
    unknown = TaskInstanceKey(dag.dag_id, "Evaluator", "manual__gone", 1, -1)
    assert links.NightReportLink().get_link(served.task_dict["Evaluator"], ti_key=unknown) == ""


def test_attach_adds_the_link_to_the_validation_and_evaluation_tasks_and_survives_serialisation(
        emerald_home):
    from airflow.serialization.serialized_objects import SerializedDAG

    from emerald_dag.builder import build_nightly_dag
    from pipeline_src.config import load_config

    dag = build_nightly_dag(load_config())
    attached = links.attach_night_report_links(dag)
    assert set(attached) == set(links.REPORT_TASK_IDS) & set(dag.task_dict)
    assert {"ExampleValidator", "ImageDistributionValidator", "Evaluator"} <= set(attached)
    assert links.attach_night_report_links(dag) == attached          # idempotent
    for task_id in attached:
        names = [link.name for link in dag.task_dict[task_id].operator_extra_links]
        assert names.count("Night report") == 1
    assert "Night report" not in dag.task_dict["Trainer"].extra_links

    # What the webserver does: deserialise the DAG, the plugin registering the link class.
    serialized = SerializedDAG.to_dict(dag)
    tasks = {t.get("__var", t)["task_id"]: t.get("__var", t) for t in serialized["dag"]["tasks"]}
    assert tasks["Evaluator"]["_operator_extra_links"] == [
        {"emerald_reports.links.NightReportLink": {}}]
    restored = SerializedDAG.from_dict(serialized)
    assert "Night report" in restored.task_dict["Evaluator"].extra_links


def test_the_plugin_registers_the_view_menu_and_link():
    import importlib

    plugin_module = importlib.import_module("emerald_reports.emerald_reports_plugin")
    plugin = plugin_module.EmeraldReportsPlugin
    (view,) = plugin.appbuilder_views
    assert (view["category"], view["name"]) == ("Emerald", "Emerald reports")
    assert view["view"].route_base == "/emerald-reports"
    assert [type(link).__module__ + "." + type(link).__name__
            for link in plugin.operator_extra_links] == ["emerald_reports.links.NightReportLink"]
    # Only the plugin file is loaded by Airflow's plugin manager (see .airflowignore).
    ignore = (REPO / "plugins" / "emerald_reports" / ".airflowignore").read_text()
    assert "views" in ignore and "emerald_reports_plugin" not in ignore


# --------------------------------------------------------------------------- reports on gs://

@pytest.fixture
def bucket_root(root, tmp_path, monkeypatch):
    """The same reports, uploaded under gs://emerald-reports/nightly/reports of a running
    GCS emulator (what the Composer webserver reads)."""
    import emerald_testing as testing

    with testing.gcs_emulator(tmp_path / "emulator.log") as url:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", url)
        client = testing.anonymous_client()
        client.create_bucket("emerald-reports")
        files = {str(p.relative_to(root)): p.read_bytes()
                 for p in sorted(root.rglob("*")) if p.is_file()}
        files["2026-01-02/../2026-01-09/report.html"] = b"<h1>not a night's file</h1>"
        files["2026-01-02/sub/report.html"] = b"<h1>nested</h1>"
        testing.upload_tree(client, "emerald-reports", "nightly/reports", files)
        yield "gs://emerald-reports/nightly/reports"


def test_the_page_reads_reports_from_gcs_as_from_a_folder(root, bucket_root):
    from emerald_reports.views import report_response

    assert reports.list_summaries(bucket_root) == reports.list_summaries(root)
    assert reports.known_nights(bucket_root) == ["2026-01-04", "2026-01-02", "2026-01-01"]
    folder = reports.ReportsFolder(bucket_root)                  # one listing per page
    summary = reports.load_summary(folder, "2026-01-02")
    assert summary == reports.load_summary(root, "2026-01-02") and summary["has_report"]
    assert reports.accuracy_charts(folder, summary) == reports.accuracy_charts(root, summary)
    assert reports.report_html(folder, "2026-01-02") == b"<h1>night 2 report</h1>"
    for night in ("2026-01-09", "../2026-01-02", "2026-01-01"):    # not listed, no report
        assert reports.report_html(folder, night) is None
    with Flask(__name__).test_request_context():
        response = report_response(folder, "2026-01-02")
        assert response.status_code == 200 and response.mimetype == "text/html"
        assert response.get_data() == b"<h1>night 2 report</h1>"
        assert response.headers["Content-Security-Policy"].startswith("sandbox")
        with pytest.raises(NotFound):
            report_response(folder, "2026-01-09")


def test_a_reports_prefix_or_bucket_that_does_not_exist_yet_lists_no_night(bucket_root):
    assert reports.list_summaries("gs://emerald-reports/elsewhere") == []
    assert reports.list_summaries("gs://no-such-bucket/reports") == []
