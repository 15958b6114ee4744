"""Every pod of the `gcp` DAG, rendered offline as the Kubernetes API would receive it.

A dummy kubeconfig (no cluster) and the operator's own `build_pod_request_obj()`
(tests/pods_testing.py; tests/test_pods_e2e.py runs the pods rendered the same way)
give the V1Pod of each task after its templates are rendered: what Composer's
cluster would be asked to run. Checked on every pod: the namespace and service
account of the configuration, CPU and memory (requests = limits, the Trainer and
the Beam nodes bigger), the MLMD password from the configured Kubernetes secret
and never as a value, the gate and report handing their result back through
XCom, and which local paths a pod would still be pointed at.
"""
from __future__ import annotations

import json

import pytest

from pipeline_src import names
from pipeline_src.config import load_config
from pods_testing import DagRunStub, is_pod, offline_kubernetes, render, template_context

RUN_ID = "scheduled__2026-03-04T02:00:00+00:00"
LOCAL_PATH_MARKERS = ("/home/airflow/gcs", "/opt/emerald/data", "/tmp/")


@pytest.fixture(scope="module")
def gcp_pods(tmp_path_factory):
    pytest.importorskip("airflow.providers.cncf.kubernetes")
    from emerald_dag.builder import build_nightly_dag

    with offline_kubernetes(tmp_path_factory.mktemp("kube")), \
            pytest.MonkeyPatch.context() as patch:
        patch.setenv("EMERALD_PROFILE", "gcp")
        config = load_config()
        dag = build_nightly_dag(config)
        context = template_context(DagRunStub(RUN_ID, 7), "2026-03-04",
                                   {"night": None, "force_push": False, "corpus_only": False})
        pods = {task.task_id: render(task, context) for task in dag.tasks if is_pod(task)}
    return config, pods


def env_of(container) -> dict:
    return {e.name: e for e in container.env or []}


def test_every_task_but_the_sensors_is_a_pod(gcp_pods):
    _, pods = gcp_pods
    assert {names.DATA_GATE_DECISION, names.NIGHT_REPORT, "Trainer", names.EXAMPLE_GEN} <= set(
        pods)
    assert names.DATA_GATE not in pods     # the gate's worker half: it sends the alert


def test_namespace_service_account_and_resources_come_from_the_configuration(gcp_pods):
    config, pods = gcp_pods
    kubernetes = config.dag.kubernetes
    assert kubernetes.namespace == "composer-user-workloads"
    for task_id, pod in pods.items():
        assert pod.metadata.namespace == kubernetes.namespace, task_id
        assert pod.spec.service_account_name == kubernetes.service_account, task_id
        base = pod.spec.containers[0]
        assert base.image == config.dag.kubernetes_image
        wanted = dict(kubernetes.resources_for(task_id))
        assert wanted, f"no resources for {task_id}"
        assert base.resources.requests == wanted == base.resources.limits, task_id
    trainer, pusher = (pods[t].spec.containers[0].resources.requests for t in ("Trainer", "Pusher"))
    assert trainer["memory"] == "8Gi" and pusher["memory"] == "2Gi"
    assert int(trainer["cpu"]) > int(pusher["cpu"])


def test_the_mlmd_password_comes_from_the_named_secret(gcp_pods):
    config, pods = gcp_pods
    postgresql = config.metadata.postgresql
    for task_id, pod in pods.items():
        variable = env_of(pod.spec.containers[0])[postgresql["password_env"]]
        assert variable.value is None, task_id                 # never a value in the pod spec
        ref = variable.value_from.secret_key_ref
        assert (ref.name, ref.key) == (postgresql["secret_name"], postgresql["secret_key"])


def test_gate_and_report_hand_their_result_back_through_xcom(gcp_pods):
    _, pods = gcp_pods
    for task_id, pod in pods.items():
        sidecars = [c.name for c in pod.spec.containers[1:]]
        variables = env_of(pod.spec.containers[0])
        if task_id in (names.DATA_GATE_DECISION, names.NIGHT_REPORT):
            assert "airflow-xcom-sidecar" in sidecars, task_id
            assert variables["EMERALD_XCOM_FILE"].value == "/airflow/xcom/return.json"
        else:
            assert not sidecars and "EMERALD_XCOM_FILE" not in variables, task_id


def test_pods_are_named_for_kubernetes(gcp_pods):
    _, pods = gcp_pods
    for task_id, pod in pods.items():
        name = pod.metadata.name
        assert name == name.lower() and "_" not in name, (task_id, name)


def test_reports_and_alert_markers_are_in_the_bucket_under_gcp(gcp_pods):
    config, _ = gcp_pods
    assert str(config.paths.reports).startswith("gs://")   # pods, worker and webserver see them


def test_no_pod_is_pointed_at_a_local_path(gcp_pods):
    config, pods = gcp_pods
    local = [(field, value) for field, value in vars(config.paths).items()
             if field not in ("home", "acknowledgments", "metadata") and "://" not in str(value)]
    assert not local, f"local paths a pod would be told about: {local}"
    for task_id, pod in pods.items():
        text = json.dumps(pod.to_dict(), default=str)
        for marker in LOCAL_PATH_MARKERS:
            assert marker not in text, (task_id, marker)
