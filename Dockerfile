# Emerald's images, two targets:
#   airflow (the default, the last stage): Airflow 2.10.5 (scheduler, webserver,
#     triggerer) plus the TFX pipeline, for docker-compose.yaml and for the
#     KubernetesPodOperator pods on Cloud Composer (`emerald node ...`,
#     EMERALD_NODE_RUNNER=kubernetes);
#   dataflow-worker: Beam's SDK image with the lock, for Dataflow's workers.
#
# Where TFX goes: its own virtualenv, /opt/emerald/venv
# ----------------------------------------------------
# Airflow's docs (docker-stack "Building the image", best-practices "Handling
# conflicting/complex Python dependencies") give two ways to add packages to
# the official image: install them next to Airflow with `apache-airflow==X.Y.Z`
# pinned, when they fit the image's constraints, or put dependencies that
# conflict with Airflow's into a separate, pre-built virtualenv run through
# ExternalPythonOperator (or into a container image run through
# KubernetesPodOperator). TFX 1.16 does not fit the image's environment:
#   - the lock (requirements.txt, the combination tested end to end here) pins
#     pyarrow 10.0.1 (tfx, tfx-bsl, TFDV, TFT, TFMA 1.16: pyarrow>=10,<11),
#     pandas 1.5.3 (tfx-bsl, TFDV, TFMA: pandas<2), protobuf 3.20.3 (what
#     TFX 1.16's own test constraints pin) and apache-airflow-providers-google
#     10.16.0;
#   - the image is built with Airflow's constraints-2.10.5 file, which pins
#     newer ones (protobuf 4.x, pandas 2.x, pyarrow far above 11, a newer
#     google provider, and dozens of pre-installed providers resolved against
#     them; see `docker run --rm apache/airflow:2.10.5-python3.10 pip freeze`).
#   Installing the lock into the image's environment would downgrade packages
#   under every pre-installed provider, which the constraints never tested;
#   installing TFX under the constraints would not resolve (pyarrow<11).
# So (a): the scheduler, webserver and triggerer keep the image's own Airflow
# packages untouched (they only need PyYAML, Pillow/NumPy for ingestion and the
# providers, all in scripts/requirements-airflow.txt); TFX, TensorFlow and Beam
# live in /opt/emerald/venv, created from the lock byte for byte (the same
# versions `make test` runs), with Emerald installed into it in editable mode.
# Node tasks run there: docker-compose sets EMERALD_NODE_RUNNER=external_python
# (ExternalPythonOperator with python=/opt/emerald/venv/bin/python, which
# include/profiles/docker.yaml names), and `emerald` on PATH is the venv's, so
# the same image serves the KubernetesPodOperator on Composer. Cost: the venv
# is ~3 GB and holds a second Airflow (the lock has it; the tasks do not use it),
# and any task that imports TFX, TensorFlow or MLMD must go through the node
# runner: the scheduler's own Python has none of them.
#
# Layout: /opt/emerald/{pipeline_src,include,dags,plugins} as in the checkout,
# because pipeline_src/config.py finds include/ at Path(__file__).parents[1].
# Airflow's own Python finds pipeline_src through a .pth file (not an install:
# that would also put an `emerald` script without TFX first on PATH).

# The Dataflow worker image: `docker build --target dataflow-worker`
# ------------------------------------------------------------------
# Dataflow runs Beam's SDK container on every worker; the Beam-based nodes
# (StatisticsGen, Transform, Evaluator) need TFDV, TFT, TFMA and tfx-bsl there, at
# exactly the launcher's versions, and pipeline_src (preprocessing_fn is named by
# its dotted path). So the image is Beam's own SDK image at the lock's Beam
# version with the lock installed over it, and Emerald laid out as below
# (editable: config.py finds include/ beside pipeline_src). Its entry point stays
# Beam's boot program. include/profiles/gcp.yaml names it in the Beam args
# (--sdk_container_image, with --sdk_location=container: nothing is staged per job).
# The same image runs the Trainer on Vertex AI (training.vertex): TFX's job runs
# `python -m tfx.scripts.run_executor` with the Trainer's executor, and this
# image's `python` is the one the lock is installed into.
FROM apache/beam_python3.10_sdk:2.62.0 AS dataflow-worker
COPY requirements.txt /opt/emerald/requirements.txt
RUN pip install --no-cache-dir -r /opt/emerald/requirements.txt
COPY pyproject.toml /opt/emerald/pyproject.toml
COPY pipeline_src /opt/emerald/pipeline_src
COPY include /opt/emerald/include
RUN pip install --no-cache-dir --no-deps -e /opt/emerald \
 && python -c "import apache_beam, tensorflow_data_validation, tensorflow_transform, tensorflow_model_analysis, tfx.scripts.run_executor, pipeline_src.model.preprocessing, pipeline_src.model.trainer; assert apache_beam.__version__ == '2.62.0', apache_beam.__version__"

# The Airflow image (the default target: the last stage)
# ------------------------------------------------------
FROM apache/airflow:2.10.5-python3.10 AS airflow

ARG AIRFLOW_VERSION=2.10.5
ENV EMERALD_ROOT=/opt/emerald \
    EMERALD_VENV=/opt/emerald/venv \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/emerald/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/emerald/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False

# /opt/emerald/data is EMERALD_HOME (docker profile); /opt/emerald/gcs holds the
# storage emulator's objects. Group 0 writable: compose runs as ${AIRFLOW_UID}:0.
USER root
RUN mkdir -p /opt/emerald/data /opt/emerald/gcs \
 && chown -R airflow:0 /opt/emerald \
 && chmod -R g+rwX /opt/emerald
USER airflow

# 1. The TFX virtualenv from the lock (before the sources: cached across code changes).
#    PIP_USER=false: the image sets PIP_USER=true, which pip refuses inside a venv.
COPY --chown=airflow:0 requirements.txt /opt/emerald/requirements.txt
RUN python -m venv /opt/emerald/venv \
 && PIP_USER=false /opt/emerald/venv/bin/pip install --no-cache-dir \
        -r /opt/emerald/requirements.txt

# 2. Emerald's sources, laid out as in the checkout.
COPY --chown=airflow:0 pyproject.toml /opt/emerald/pyproject.toml
COPY --chown=airflow:0 pipeline_src /opt/emerald/pipeline_src
COPY --chown=airflow:0 include /opt/emerald/include
COPY --chown=airflow:0 dags /opt/emerald/dags
COPY --chown=airflow:0 plugins /opt/emerald/plugins
COPY --chown=airflow:0 scripts/requirements-airflow.txt /opt/emerald/scripts/requirements-airflow.txt

# 3. Emerald into the venv (editable: compose mounts the checkout's pipeline_src/
#    over /opt/emerald/pipeline_src and the venv follows).
# The venv sees plugins/ through a .pth, as Airflow's own Python does (the
# external-python tasks' callables are shipped from there).
RUN PIP_USER=false /opt/emerald/venv/bin/pip install --no-cache-dir --no-deps -e /opt/emerald \
 && /opt/emerald/venv/bin/python -c "import site, pathlib; pathlib.Path(site.getsitepackages()[0], 'emerald-plugins.pth').write_text('/opt/emerald/plugins\n')" \
 && /opt/emerald/venv/bin/python -c "import pipeline_src.decision.alerts, pipeline_src.orchestration.tasks"

# 4. The Airflow side: the image's environment, apache-airflow pinned to the
#    image's version as Airflow's docs advise (a no-op for what is already there),
#    and pipeline_src importable through a .pth file in Airflow's site-packages.
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" \
        -r /opt/emerald/scripts/requirements-airflow.txt \
 && python -c "import pathlib, airflow; pathlib.Path(airflow.__file__).resolve().parents[1].joinpath('emerald.pth').write_text('/opt/emerald\n')" \
 && python -c "import pipeline_src.config as c; assert str(c.REPO_ROOT) == '/opt/emerald', c.REPO_ROOT" \
 && /opt/emerald/venv/bin/python -c "import pipeline_src.config as c; assert str(c.REPO_ROOT) == '/opt/emerald', c.REPO_ROOT"

# 5. `emerald` (what the KubernetesPodOperator runs) is the venv's.
USER root
RUN ln -sf /opt/emerald/venv/bin/emerald /usr/local/bin/emerald \
 && chmod -R g+rwX /opt/emerald/data /opt/emerald/gcs
USER airflow
