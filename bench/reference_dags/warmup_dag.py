"""A trivial DAG parsed before each measured file, so both measurements start from
what a scheduler's DAG processor already has loaded (Airflow's own modules: DAG,
params and their JSON-schema validation, operators, sensors, serialization),
and neither pays those one-time imports. Nothing Emerald- or TFX-specific."""
import datetime as dt

from airflow import DAG
from airflow.models.param import Param
from airflow.operators.empty import EmptyOperator
from airflow.operators.python import PythonOperator
from airflow.sensors.time_delta import TimeDeltaSensor

with DAG("warmup", schedule="0 2 * * *", start_date=dt.datetime(2026, 1, 1),
         params={"p": Param(None, type=["null", "string"])}) as dag:
    EmptyOperator(task_id="a") >> PythonOperator(task_id="b", python_callable=print) \
        >> TimeDeltaSensor(task_id="c", delta=dt.timedelta(0))
