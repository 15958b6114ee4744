"""What a task's pod is made of when `dag.node_runner` is kubernetes (Cloud Composer).

One place for everything a KubernetesPodOperator needs beyond the command, all
from the configuration: the image, the namespace and service account, CPU and
memory per task (requests = limits, so the scheduler places a Trainer where 8 GiB
are free and a runaway node is killed, not its neighbours), the environment the
pod loads its configuration from, and the MLMD password from the Kubernetes
secret the configuration names (never a value in the DAG).

A pod shares nothing with the worker: no mounted folder, no Airflow connection.
The gate and the report hand their result back through XCom (`xcom=True`: the
operator's sidecar reads /airflow/xcom/return.json, which `emerald gate` and
`emerald report` write when EMERALD_XCOM_FILE names it).
"""
from __future__ import annotations

from typing import Any

from pipeline_src.config import Config

XCOM_FILE = "/airflow/xcom/return.json"      # where KubernetesPodOperator's sidecar reads


def pod_name(task_id: str) -> str:
    """A DNS-1123 name (lower case, dashes): Kubernetes rejects underscores and capitals."""
    return "emerald-" + task_id.lower().replace("_", "-")


def pod_arguments(config: Config, task_id: str, *, xcom: bool = False) -> dict[str, Any]:
    """KubernetesPodOperator keyword arguments for one task (its command excepted)."""
    from airflow.providers.cncf.kubernetes.secret import Secret
    from kubernetes.client import models as k8s

    pods = config.dag.kubernetes
    env = {"EMERALD_PROFILE": config.profile or "", "EMERALD_SOURCE": config.paths.source}
    if xcom:
        env["EMERALD_XCOM_FILE"] = XCOM_FILE
    secrets = []
    postgresql = config.metadata.postgresql
    if config.metadata.backend == "postgresql" and postgresql.get("secret_name"):
        secrets.append(Secret("env", postgresql.get("password_env", "EMERALD_MLMD_PASSWORD"),
                              postgresql["secret_name"], postgresql.get("secret_key", "password")))
    amounts = dict(pods.resources_for(task_id))
    return dict(
        name=pod_name(task_id),
        image=config.dag.kubernetes_image,
        namespace=pods.namespace,
        service_account_name=pods.service_account or None,
        container_resources=(k8s.V1ResourceRequirements(requests=amounts, limits=amounts)
                             if amounts else None),
        env_vars=env,
        secrets=secrets,
        do_xcom_push=xcom,
        get_logs=True,
    )
