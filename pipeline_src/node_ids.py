"""The one home of the pipeline's node ids and the DAG's own task ids.

Imported by the pipeline (TFX), the DAG builder, the report and the UI links;
plain strings, so importing it costs nothing at DAG parse time.
"""
EXAMPLE_GEN = "ImageExampleGen"
STATISTICS_GEN = "StatisticsGen"
EXAMPLE_VALIDATOR = "ExampleValidator"            # schema anomalies (TFDV)
DISTRIBUTION_VALIDATOR = "ImageDistributionValidator"   # skew, drift, prediction drift
RESOLVER = "LatestBlessedModelResolver"
EVALUATOR = "Evaluator"
PUSHER = "Pusher"

VALIDATORS = (EXAMPLE_VALIDATOR, DISTRIBUTION_VALIDATOR)   # what the data gate reads

# Airflow-only tasks around the TFX nodes.
WAIT_FOR_NIGHT = "wait_for_night"
INGEST_NIGHT = "ingest_night"
DATA_GATE = "data_gate"
NIGHT_REPORT = "night_report"
