"""Decision and reporting: the data gate's policy, acknowledgments, alerts, the
night's summary and report with its charts."""
