"""The "Night report" button on the validation and evaluation tasks.

The DAG builder calls `attach_night_report_links(dag)` after creating the
tasks; the link class is registered by the plugin (`operator_extra_links`) so
the webserver can deserialise it from the serialized DAG. Importing this
module is cheap (Airflow's BaseOperatorLink only): it runs at DAG parse time.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Optional
from urllib.parse import quote

from airflow.models.baseoperatorlink import BaseOperatorLink

from pipeline_src.names import (DATA_GATE, EVALUATOR, NIGHT_NAME_PATTERN, REPORTS_ROUTE,
                                VALIDATORS)

LINK_NAME = "Night report"
ROUTE_BASE = REPORTS_ROUTE
# The tasks whose outcome the night report explains.
REPORT_TASK_IDS = VALIDATORS + (EVALUATOR, DATA_GATE)
_NIGHT_RE = re.compile(NIGHT_NAME_PATTERN)


def _night_or_none(value: Any) -> Optional[str]:
    if isinstance(value, str) and _NIGHT_RE.match(value.strip()):
        return value.strip()
    return None


def resolve_night(rendered_night: Any = None, conf: Any = None, logical_date: Any = None) -> Optional[str]:
    """The night a task worked on, in the order the DAG's own template decides it.

    The task's rendered `night` field first (what the task really used), then the
    run's conf `night` (Trigger DAG w/ config), then the run's logical date (`ds`).
    """
    night = _night_or_none(rendered_night)
    if night:
        return night
    if isinstance(conf, dict):
        night = _night_or_none(conf.get("night"))
        if night:
            return night
    if logical_date is not None:
        try:
            return logical_date.strftime("%Y-%m-%d")
        except AttributeError:
            return _night_or_none(str(logical_date)[:10])
    return None


def night_report_url(night: str) -> str:
    """The Emerald reports page for one night (relative to the webserver's root)."""
    path = f"{ROUTE_BASE}/night/{quote(night, safe='')}"
    try:
        from flask import url_for

        return url_for("EmeraldReportsView.night", night=night)
    except Exception:  # no app/request context (tests, CLI): build the path ourselves
        try:
            from urllib.parse import urlsplit

            from airflow.configuration import conf

            prefix = urlsplit(conf.get("webserver", "base_url", fallback="") or "").path.rstrip("/")
        except Exception:
            prefix = ""
        return prefix + path


def _lookup_night(ti_key) -> Optional[str]:
    """Reads the rendered `night` field and the DAG run from Airflow's database."""
    from airflow.models.dagrun import DagRun
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.utils.session import create_session

    with create_session() as session:
        rendered = session.query(RenderedTaskInstanceFields.rendered_fields).filter(
            RenderedTaskInstanceFields.dag_id == ti_key.dag_id,
            RenderedTaskInstanceFields.task_id == ti_key.task_id,
            RenderedTaskInstanceFields.run_id == ti_key.run_id,
            RenderedTaskInstanceFields.map_index == getattr(ti_key, "map_index", -1),
        ).scalar()
        rendered_night = rendered.get("night") if isinstance(rendered, dict) else None
        if _night_or_none(rendered_night):
            return rendered_night
        run = session.query(DagRun).filter(DagRun.dag_id == ti_key.dag_id,
                                           DagRun.run_id == ti_key.run_id).one_or_none()
        if run is None:
            return None
        return resolve_night(None, run.conf, run.logical_date)


class NightReportLink(BaseOperatorLink):
    """Links a task instance to its night on the Emerald reports page."""

    name = LINK_NAME

    def get_link(self, operator, *, ti_key) -> str:
        try:
            night = _lookup_night(ti_key)
        except Exception:  # the button must never break the task page
            night = None
        return night_report_url(night) if night else ""


def attach_night_report_links(dag, task_ids: Iterable[str] = REPORT_TASK_IDS) -> list[str]:
    """Adds the "Night report" button to the tasks in `task_ids` that exist in `dag`.

    Returns the task ids that got it. Safe to call twice.
    """
    attached = []
    for task_id in task_ids:
        if task_id not in dag.task_dict:
            continue
        task = dag.task_dict[task_id]
        links = [link for link in (task.operator_extra_links or ())
                 if getattr(link, "name", None) != LINK_NAME]
        task.operator_extra_links = (*links, NightReportLink())
        attached.append(task_id)
    return attached
