"""AirflowPlugin "emerald_reports": the Emerald reports page and the "Night report" task link."""
from __future__ import annotations

from pathlib import Path

from airflow.plugins_manager import AirflowPlugin
from flask import Blueprint

from emerald_reports.links import NightReportLink
from emerald_reports.views import EmeraldReportsView

# Only carries the templates (templates/emerald_reports/*.html) to Flask's loader.
blueprint = Blueprint("emerald_reports", __name__,
                      template_folder=str(Path(__file__).resolve().parent / "templates"))


class EmeraldReportsPlugin(AirflowPlugin):
    name = "emerald_reports"
    flask_blueprints = [blueprint]
    appbuilder_views = [{"name": "Emerald reports", "category": "Emerald",
                         "view": EmeraldReportsView()}]
    # Registering the class lets the webserver deserialise links that
    # emerald_reports.links.attach_night_report_links() put on tasks.
    operator_extra_links = [NightReportLink()]
