"""The `gcp` DAG's pods, rendered offline and run here as processes that share nothing.

    offline_kubernetes   a dummy kubeconfig, so that KubernetesPodOperator renders its pod
                         (`build_pod_request_obj()`) with no cluster
    DagRunStub, render   a task rendered for one DAG run (its templates filled in) and, for
                         a pod, the V1Pod the Kubernetes API would receive
    topological          the DAG's tasks in an order a scheduler could run them one by one
    pod_process          a pod's container as a command line and an environment: the
                         container's command + args, its env with secrets resolved
    image_env            the image's own settings (the Dockerfile's ENV), for this checkout
    Sandbox              runs a command in a fresh scratch folder (its working directory,
                         HOME and TMPDIR) inside a private mount namespace whose whole
                         filesystem is an overlay: anything the process writes outside its
                         scratch folder (and the volumes a pod mounts) lands in the overlay,
                         never on this machine's disk, and is reported as `outside_writes`
    run_worker_task      (this file run as a script: worker_command) a task that is no
                         pod, executed in a fresh process as Airflow's worker executes it:
                         the DAG built from the configuration, the task's templates
                         rendered, execute(context)

Used by tests/test_pods_e2e.py and tests/plugins/test_pod_render.py; quick tests of the
sandbox in tests/test_pods_testing.py.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, Mapping, Optional

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent        # the image's /opt/emerald/venv/bin


# --------------------------------------------------------------------------- rendering

@contextlib.contextmanager
def offline_kubernetes(folder: Path) -> Iterator[Path]:
    """KUBECONFIG pointing at a cluster that does not exist (nothing is ever sent to it)."""
    import pytest

    kubeconfig = Path(folder) / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "offline",
        "clusters": [{"name": "offline", "cluster": {"server": "https://127.0.0.1:9"}}],
        "contexts": [{"name": "offline", "context": {"cluster": "offline", "user": "u"}}],
        "users": [{"name": "u", "user": {"token": "offline"}}]}))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KUBECONFIG", str(kubeconfig))
        # The operator's hook looks its connection up: found here, not in Airflow's database.
        patch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", json.dumps(
            {"conn_type": "kubernetes", "extra": {"kube_config_path": str(kubeconfig)}}))
        # The client reads KUBECONFIG when first imported; an earlier test may have.
        import kubernetes.config.kube_config as kube_config

        patch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))
        yield kubeconfig


class DagRunStub:
    """What the DAG's templates read of a DAG run: its id, and its failed tasks so far."""

    def __init__(self, run_id: str, id_: int, failed: tuple[str, ...] = ()):
        self.run_id, self.id, self.failed = run_id, id_, list(failed)

    def get_task_instances(self, state=None):
        return list(self.failed) if state and "failed" in state else []


def template_context(dag_run: DagRunStub, ds: str, params: Mapping) -> dict:
    return {"run_id": dag_run.run_id, "ds": ds, "dag_run": dag_run, "params": dict(params)}


def is_pod(task) -> bool:
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    return isinstance(task, KubernetesPodOperator)


def render(task, context: Mapping):
    """The task's templates rendered for `context`; a pod task's V1Pod, else None.

    Needs offline_kubernetes for a pod. Renders a copy: the DAG's task keeps its templates.
    """
    import copy

    task = copy.deepcopy(task)
    task.render_template_fields(dict(context))
    return task.build_pod_request_obj() if is_pod(task) else None   # no ti: no labels


def topological(dag) -> list[str]:
    """Task ids, each after all its upstream tasks, ties in the DAG's own order."""
    order, done = [], set()
    pending = [t.task_id for t in dag.tasks]
    while pending:
        ready = [t for t in pending if dag.get_task(t).upstream_task_ids <= done]
        if not ready:
            raise ValueError(f"a cycle among {pending}")
        order.append(ready[0])
        done.add(ready[0])
        pending.remove(ready[0])
    return order


# --------------------------------------------------------------------------- a pod, here

def image_env() -> dict[str, str]:
    """The image's own environment (Dockerfile: the apache/airflow base, then ENV), with
    this checkout where the image has /opt/emerald. Not AIRFLOW_HOME: the image's
    /opt/airflow is a folder of the container's own, here Airflow's default, ~/airflow,
    in the process's scratch HOME."""
    return {
        "PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin",   # `emerald` is the venv's
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "LANG": "C.UTF-8",
    }


def pod_process(pod, secrets: Mapping[tuple[str, str], str]) -> tuple[list[str], dict, list]:
    """(argv, env, volumes) of the pod's main container.

    argv: its command + args. env: its variables, a secret's value from `secrets`
    ({(secret name, key): value}, what the cluster's secret holds). volumes: the mount
    paths of its volumes (the XCom sidecar's emptyDir), each a scratch folder here.
    """
    container = pod.spec.containers[0]
    env = {}
    for variable in container.env or []:
        if variable.value is not None:
            env[variable.name] = variable.value
            continue
        ref = variable.value_from.secret_key_ref
        env[variable.name] = secrets[(ref.name, ref.key)]      # KeyError: an unknown secret
    if container.env_from:
        raise ValueError(f"{pod.metadata.name}: env_from is not reproduced here")
    volumes = [mount.mount_path for mount in container.volume_mounts or []]
    return list(container.command or []) + list(container.args or []), env, volumes


# --------------------------------------------------------------------------- the sandbox

# Runs as root in a new mount and pid namespace (unshare): a tmpfs over LAYERS holds an
# overlay of the whole root filesystem, with the scratch folder and the volumes bound into
# it, read-write, as themselves. The command runs chrooted there; afterwards, what the
# overlay caught is listed into LISTING. Nothing of it outlives the namespace.
SANDBOX_SCRIPT = r"""
set -u
command_path=$PATH
PATH=/usr/sbin:/usr/bin:/sbin:/bin
layers=$1 scratch=$2 listing=$3 workdir=$4
shift 4
mount -t tmpfs -o size=8g,mode=700 emerald-sandbox "$layers"
mkdir "$layers/upper" "$layers/work" "$layers/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$layers/upper,workdir=$layers/work" \
  "$layers/root"
mount -t proc proc "$layers/root/proc"
mount --rbind /dev "$layers/root/dev"
mount -t tmpfs -o size=2g shm "$layers/root/dev/shm"
mount --rbind /sys "$layers/root/sys"
mount --bind "$scratch" "$layers/root$scratch"
while [ "$1" != "--" ]; do
  mkdir -p "$layers/root$2"
  mount --bind "$1" "$layers/root$2"
  shift 2
done
shift
chroot "$layers/root" /usr/bin/env PATH="$command_path" /bin/sh -c 'cd "$0" && exec "$@"' \
  "$workdir" "$@"
code=$?
(cd "$layers/upper" && find . -mindepth 1 -printf '%y %P\n') > "$listing"
exit $code
"""


@dataclasses.dataclass
class Finished:
    """A sandboxed process that ended: its exit code, stdout, stderr (also in `log`), and
    the paths it wrote outside its scratch folder and volumes ("f /root/.cache/x", ...)."""
    name: str
    returncode: int
    stdout: str
    stderr: str
    log: Path
    outside_writes: list[str]
    seconds: float

    def tail(self, chars: int = 6000) -> str:
        return (f"{self.name} exited {self.returncode}:\n{self.stdout[-2000:]}\n"
                f"{self.stderr[-chars:]}")


def sandbox_available() -> Optional[str]:
    """None when this machine can run the sandbox, else why not (root, unshare, overlay)."""
    if os.geteuid() != 0:
        return "the sandbox mounts an overlay: it needs root"
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "--",
                            "/bin/sh", "-c", "mount -t tmpfs t /mnt && mkdir /mnt/u /mnt/w /mnt/r"
                            " && mount -t overlay o -o lowerdir=/,upperdir=/mnt/u,workdir=/mnt/w"
                            " /mnt/r"], capture_output=True, text=True)
    return None if probe.returncode == 0 else f"no overlay mount here: {probe.stderr.strip()}"


def require_sandbox() -> None:
    """Skips the calling test where the sandbox cannot run (not root, no overlay); in CI
    (CI set), where it must run, fails instead, so that a green run never hides it."""
    import pytest

    why_not = sandbox_available()
    if why_not:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"no sandbox: {why_not}")


class Sandbox:
    """Processes of one test, each in a scratch folder of its own under `root`."""

    def __init__(self, root: Path):
        import itertools
        import threading

        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.finished: list[Finished] = []
        self._numbers, self._lock = itertools.count(), threading.Lock()

    def scratch(self, name: str) -> Path:
        """A fresh, empty folder for the next process (numbered: names may repeat)."""
        with self._lock:             # processes may start from several threads
            folder = self.root / f"{next(self._numbers):02d}-{name}"
        for sub in ("work", "home", "tmp"):
            (folder / "scratch" / sub).mkdir(parents=True)
        (folder / "layers").mkdir()
        return folder

    def run(self, name: str, argv: list[str], env: Mapping[str, str], *,
            volumes: tuple[str, ...] = (), timeout: float = 1200) -> Finished:
        """`argv` with `env` (plus HOME and TMPDIR in its scratch) in a fresh sandbox.

        Each path in `volumes` is a folder of the scratch mounted there, as a pod's
        emptyDir; `self.volume(finished, path)` finds it afterwards.
        """
        folder = self.scratch(name)
        scratch = folder / "scratch"
        env = {**env, "HOME": str(scratch / "home"), "TMPDIR": str(scratch / "tmp")}
        bound = []
        for path in volumes:
            source = scratch / "volumes" / path.strip("/").replace("/", "_")
            source.mkdir(parents=True)
            bound += [str(source), path]
        command = (["unshare", "--mount", "--propagation", "private", "--pid", "--fork",
                    "--kill-child", "--", "/bin/sh", "-c", SANDBOX_SCRIPT, "sandbox",
                    str(folder / "layers"), str(scratch), str(folder / "outside.txt"),
                    str(scratch / "work"), *bound, "--"] + list(argv))
        log = folder / "stderr.log"
        started = time.monotonic()
        with open(log, "w+") as err:
            proc = subprocess.Popen(command, env=dict(env), stdout=subprocess.PIPE, stderr=err,
                                    text=True, start_new_session=True)
            try:
                stdout, _ = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                stdout, _ = proc.communicate()
                err.write(f"\n[test] killed after {timeout:.0f} s\n")
            err.seek(0)
            stderr = err.read()
        listing = folder / "outside.txt"
        writes = self._outside(listing.read_text(), volumes) if listing.exists() else [
            "(no listing: the sandbox did not finish)"]
        finished = Finished(name, proc.returncode, stdout, stderr, log, writes,
                            time.monotonic() - started)
        self.finished.append(finished)
        return finished

    @staticmethod
    def _outside(listing: str, volumes: tuple[str, ...]) -> list[str]:
        """The overlay's entries that are writes: every file, link or deletion (a whiteout
        is a character device), and every directory this machine does not have (the others
        are parents copied up), but the volumes' mount points and their parents."""
        mount_points = {Path(v) for v in volumes}
        mount_points |= {p for v in mount_points for p in v.parents}
        writes = []
        for line in filter(None, listing.splitlines()):
            kind, path = line.split(" ", 1)
            path = Path("/", path)
            if kind == "d" and (path.is_dir() or path in mount_points):
                continue
            writes.append(f"{kind} {path}")
        return writes

    @staticmethod
    def volume(finished: Finished, path: str) -> Path:
        return finished.log.parent / "scratch" / "volumes" / path.strip("/").replace("/", "_")


# --------------------------------------------------------------------------- worker tasks

def worker_command(task_id: str, spec_file: Path) -> list[str]:
    """The command line that runs `run_worker_task` in a fresh interpreter.

    This file is run by path (runpy), not as `python tests/pods_testing.py`, which would put
    tests/ first on sys.path, where tests/pipeline_src/ would shadow the real package.
    """
    return [sys.executable, "-c", "import runpy, sys; sys.argv = sys.argv[1:]; "
            "runpy.run_path(sys.argv[0], run_name='__main__')", __file__, task_id,
            str(spec_file)]


def run_worker_task(task_id: str, spec_file: Path) -> int:
    """Executes one task of the DAG as the worker does, printing RESULT{json} last.

    spec: {"run_id", "dag_run_id", "ds", "params", "failed": [task ids], "xcom": {task id:
    value}}. The DAG is built from the configuration (EMERALD_PROFILE, EMERALD_CONFIG), the
    task's templates rendered with the run's context, then `execute(context)`: what
    Airflow's TaskInstance does in the worker, without its database (XComs come from spec).
    """
    import airflow  # noqa: F401 - puts plugins/ on sys.path, as for a DAG file
    from airflow.utils.context import Context

    from emerald_dag.builder import build_nightly_dag
    from pipeline_src.config import load_config

    spec = json.loads(Path(spec_file).read_text())

    class TaskInstanceStub:
        def xcom_pull(self, task_ids=None, key="return_value", **_):
            return spec["xcom"].get(task_ids)

    dag = build_nightly_dag(load_config())
    task = dag.get_task(task_id)
    dag_run = DagRunStub(spec["run_id"], spec["dag_run_id"], tuple(spec["failed"]))
    context = Context({**template_context(dag_run, spec["ds"], spec["params"]),
                       "ti": TaskInstanceStub(), "task": task, "dag": dag})
    task.render_template_fields(context)
    try:
        result = {"state": "success", "return": task.execute(context)}
    except Exception as error:  # noqa: BLE001 - the task failed: reported to the test
        result = {"state": "failed", "error": type(error).__name__, "message": str(error)}
    print("RESULT" + json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(run_worker_task(sys.argv[1], Path(sys.argv[2])))
