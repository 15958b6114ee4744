"""Airflow's LocalExecutor, with every task process starting with TensorFlow and TFX imported.

Every Airflow task is its own process, and a TFX task spends 20-25 s importing
TensorFlow, TFX, Beam and its executor before its executor starts
(BENCHMARKS.md, "Fixed cost per task"): on a small night, more than the work.
The LocalExecutor forks its workers from the scheduler, and each worker forks
`airflow tasks run`, which forks the task itself (`[core]
execute_tasks_new_python_interpreter = False`, Airflow's default). So the
imports done once here, in the scheduler, before the workers start, are in
every task process for free (copy-on-write), and a launch logs TensorFlow as
"already imported (preloaded)".

    AIRFLOW__CORE__EXECUTOR=emerald_tfx.executor.PreloadingLocalExecutor

It needs what the LocalExecutor needs (a PostgreSQL or MySQL Airflow database)
and, with nodes running in parallel, MLMD on PostgreSQL (`metadata.backend`).
The scheduler process holds the imports (about 1.5 GB of address space, mostly
shared with the tasks). With `execute_tasks_new_python_interpreter = True`
nothing is inherited, and it behaves as the LocalExecutor; so it does when
`dag.node_runner` is not in_process (the nodes run in another interpreter).
"""
from __future__ import annotations

import time

from airflow import settings
from airflow.executors.local_executor import LocalExecutor


class PreloadingLocalExecutor(LocalExecutor):
    """A LocalExecutor whose workers are forked after the TFX launch's imports."""

    def start(self) -> None:
        from pipeline_src.config import IN_PROCESS, load_config

        runner = load_config().dag.node_runner
        if settings.EXECUTE_TASKS_NEW_PYTHON_INTERPRETER:
            self.log.warning("[core] execute_tasks_new_python_interpreter is set: task "
                             "processes are new interpreters and inherit no import")
        elif runner != IN_PROCESS:
            # The nodes run in another interpreter (a virtualenv, a pod), which inherits
            # nothing; that virtualenv's TFX may not even be importable here.
            self.log.warning("node_runner is %s, not %s: nothing to preload", runner,
                             IN_PROCESS)
        else:
            from pipeline_src.orchestration import node

            started = time.monotonic()
            classes = node.preload()
            self.log.info("preloaded TensorFlow, TFX's launcher and %d executors in %.1f s: "
                          "%s", len(classes), time.monotonic() - started, ", ".join(classes))
        super().start()
