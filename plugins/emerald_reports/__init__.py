"""Emerald reports: an Airflow UI page listing each night's outcome, and a "Night report" link.

    plugins/emerald_reports/
      reports.py                  reading {paths.reports}/{night}/summary.json (no Flask, no Airflow)
      links.py                    NightReportLink + attach_night_report_links(dag) for the DAG builder
      views.py                    the appbuilder view (menu "Emerald" > "Emerald reports")
      emerald_reports_plugin.py   the AirflowPlugin that registers both

Airflow's plugin manager imports every .py file under plugins/ as a top-level
module; `.airflowignore` here keeps it to the plugin file, which imports the
rest as `emerald_reports.*` (so the link's class path is stable).
"""
