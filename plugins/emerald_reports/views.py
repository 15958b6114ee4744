"""The "Emerald reports" page: one row per night, and each night's full report.

Routes (under /emerald-reports, login and the view's permissions required):
  /                          every night: data findings, accuracy per slice, blessed, pushed version
  /night/<night>             one night: the summary, its accuracy charts, and its report.html
                             in a sandboxed frame
  /night/<night>/report.html the report itself (only for a night listed in the reports
                             location, a folder or gs:// prefix)
"""
from __future__ import annotations

from flask import abort, make_response
from flask_appbuilder import BaseView, expose
from flask_appbuilder.security.decorators import has_access

from emerald_reports import reports
from emerald_reports.links import ROUTE_BASE

# The report is our own static HTML: no scripts, no forms, no same-origin access.
REPORT_CSP = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def report_response(root, night):
    """report.html for a known night, sandboxed; 404 for anything else."""
    html = reports.report_html(root, night)
    if html is None:
        abort(404)
    response = make_response(html)
    response.mimetype = "text/html"
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Content-Security-Policy"] = REPORT_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


class EmeraldReportsView(BaseView):
    """Registered in the menu as "Emerald" > "Emerald reports"."""

    route_base = ROUTE_BASE
    default_view = "index"
    class_permission_name = "Emerald Reports"
    method_permission_name = {"index": "read", "night": "read", "report": "read"}

    @expose("/")
    @has_access
    def index(self):
        folder = reports.ReportsFolder(reports.reports_dir())
        nights = reports.list_summaries(folder)
        return self.render_template(
            "emerald_reports/index.html", nights=nights, trends=reports.trend_charts(nights),
            reports_dir=folder.root, fmt=reports.fmt_metric)

    @expose("/night/<string:night>")
    @has_access
    def night(self, night):
        folder = reports.ReportsFolder(reports.reports_dir())
        summary = reports.load_summary(folder, night)
        if summary is None:
            abort(404)
        return self.render_template("emerald_reports/night.html", s=summary,
                                    accuracy=reports.accuracy_charts(folder, summary),
                                    fmt=reports.fmt_metric)

    @expose("/night/<string:night>/report.html")
    @has_access
    def report(self, night):
        return report_response(reports.reports_dir(), night)
