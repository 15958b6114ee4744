"""The one home of the names several layers share: node and task ids, runtime templates, routes.

Imported by the pipeline (TFX), the DAG builder, the operators, the report and
the UI plugin; plain strings, so importing it costs nothing at DAG parse time.
"""
# Nodes of the compiled TFX pipeline (each one Airflow task).
EXAMPLE_GEN = "ImageExampleGen"
STATISTICS_GEN = "StatisticsGen"
EXAMPLE_VALIDATOR = "ExampleValidator"                  # schema anomalies (TFDV)
DISTRIBUTION_VALIDATOR = "ImageDistributionValidator"   # skew, drift, prediction drift
RESOLVER = "ServingModelResolver"     # the serving model (a rollback included)
EVALUATOR = "Evaluator"
PUSHER = "Pusher"
TRAINER = "Trainer"
TUNER = "Tuner"                   # only when training.tuner_trials > 0
VALIDATORS = (EXAMPLE_VALIDATOR, DISTRIBUTION_VALIDATOR)   # what the data gate reads
GATE_UPSTREAM = VALIDATORS + (EVALUATOR,)   # the gate also reads the blessing ("model")

# The compiled pipeline's runtime parameters, filled in at launch (pipeline-root and
# pipeline-run-id are TFX's own): named here, so a launch does not import the pipeline
# definition (TFMA and every component) to fill them in.
NIGHT_PARAMETER = "night"
INPUT_BASE = "input-base"
SCHEMA_FILE_PARAMETER = "schema-file"
PUSH_DESTINATION = "push-destination"
RUNTIME_PARAMETERS = (NIGHT_PARAMETER, INPUT_BASE, SCHEMA_FILE_PARAMETER, PUSH_DESTINATION)

# The SavedModel's serving contract (pipeline_src/model/exporter.py writes it; `emerald
# predict` and TF Serving's clients call it): a batch of raw JPEG/PNG bytes in, each
# label's score and the labels out.
SERVING_SIGNATURE = "serving_default"
SERVING_INPUT = "image_bytes"
SCORES = "scores"
CLASSES = "classes"

# Airflow-only tasks around the TFX nodes.
WAIT_FOR_NIGHT = "wait_for_night"
INGEST_NIGHT = "ingest_night"
DATA_GATE = "data_gate"
DATA_GATE_DECISION = "data_gate_decision"   # the gate's pod under node_runner=kubernetes
NIGHT_REPORT = "night_report"

# Airflow templates, rendered when a task runs.
# The TFX pipeline run id: one per DAG run, stable across task retries and
# clears, distinct when the same night is run again as a new DAG run.
TFX_RUN_ID = "{{ run_id }}.{{ dag_run.id }}"
NIGHT = "{{ params.get('night') or ds }}"               # the param, else the run's date
FORCE_PUSH = "{{ params.get('force_push', False) }}"
FULL_RETRAIN = "{{ params.get('full_retrain', False) }}"

# ImageExampleGen makes one Examples artifact per span (the corpus, each of Toto's
# nights; components/examplegen.py), and the nodes that need the history take every
# span's latest version through TFX's all_spans resolver (components/span_history.py).
# Each span artifact's custom properties: SPAN_FORMAT (which layout it has), SPAN_KEY
# (what it was made of: its listing; another listing makes it anew), SPAN_COUNTS (its
# images per split), SPAN_SUMMARY (each split's feature summary, validation/summary.py:
# the training baseline merged span by span without reading a file), the night it is
# ("corpus" or YYYY-MM-DD: SPAN_NAME), the night that made it (NIGHT_PROPERTY) and its
# rejections (SPAN_REJECTED).
SPAN_FORMAT = "span_format"
SPAN_NAME = "span_name"
SPAN_KEY = "span_key"
SPAN_COUNTS = "span_counts"
SPAN_SUMMARY = "span_summary"
SPAN_REJECTED = "span_rejected_count"
NIGHT_PROPERTY = "night"
# Tonight's span artifact also carries the night's plan: images per split of what the
# night trains and evaluates on (split_counts), per split and night (EXAMPLES_NIGHT_COUNTS:
# {"train": {"corpus": 120, "2024-06-01": 30}, ...}; `emerald lineage` reads what a model
# learnt from out of MLMD), eval_mode, previous_night and the night's rejections.
EXAMPLES_NIGHT_COUNTS = "night_counts"
SPLIT_COUNTS = "split_counts"
# Beside its splits, in tonight's artifact: the night's feature summary per split (train
# merged span by span, validation/summary.py); the report's training baseline.
FEATURE_SUMMARY_FILE = "feature_summary.json"
# In every span artifact: each split's property columns (validation/columns.py): the
# ImageDistributionValidator's samples, the history's without reading its photos.
PROPERTY_COLUMNS_FILE = "property_columns.json"
# And its rejected images with their reasons (tonight's: every span made that night).
REJECTED_FILE = "rejected.json"
# Each split's records: one gzipped TFRecord file in {examples}/Split-{name}/, named as
# Beam's shards, so TFX's readers (Transform, Trainer, StatisticsGen) glob it as theirs.
EXAMPLES_SHARD_FILE = "data_tfrecord-00000-of-00001.gz"

# The model's architectures (training.architecture; pipeline_src/model/model.py builds them).
SMALL_CNN = "small_cnn"
MOBILENET_V3_SMALL = "mobilenet_v3_small"
ARCHITECTURES = (SMALL_CNN, MOBILENET_V3_SMALL)

# The Trainer's custom_config key that asks for a full retrain instead of a warm start:
# false in the compiled pipeline, set at launch by the DAG param full_retrain.
FULL_RETRAIN_KEY = "full_retrain"
# The run's outcome so far, for the teardown report (rendered after its upstreams).
RUN_STATE = ("{{ 'failed' if dag_run.get_task_instances(state=['failed', 'upstream_failed'])"
             " else 'success' }}")

# The Emerald reports page (plugins/emerald_reports) and a night's report on it.
REPORTS_ROUTE = "/emerald-reports"
NIGHT_REPORT_ROUTE = REPORTS_ROUTE + "/night/{night}"

# The bucket layout: what users upload, what ingestion writes, what ExampleGen reads.
CORPUS_DIR = "corpus"                        # {source}/corpus/{label}/{name}
TOTO_DIR = "toto"                            # {source}/toto/{YYYY-MM-DD}/{label}/{name}
UPLOADS_COMPLETE_MARKER = "_SUCCESS"         # a night's folder is complete (completion: marker)
NIGHT_NAME_PATTERN = r"^\d{4}-\d{2}-\d{2}$"  # a night: YYYY-MM-DD
# Spans on gs://: {spans}/{span}/{generation}/{label}/{name}, and {spans}/{span}/_current.json
# naming the generation readers take (pipeline_src/ingest/remote.py).
SPAN_POINTER = "_current.json"
SPAN_GENERATION_PATTERN = r"^g-\d{8}T\d{6}-[0-9a-f]{8}$"

# A night's report folder: {reports}/{YYYY-MM-DD}/...
SUMMARY_FILE = "summary.json"                # the night's outcome (gate, report task, `emerald run`)
REPORT_FILE = "report.html"                  # the page people read
LATE_UPLOADS_FILE = "late_uploads.json"      # earlier nights caught up tonight (ingest task)
ALERTS_FILE = "alerts.json"                  # the gate's alert delivery per channel
