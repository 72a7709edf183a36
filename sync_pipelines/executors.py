"""The executor of every sync job: its own (in-process, multiprocess), or Celery workers.

``SYNC_EXECUTOR=celery`` hands each step to a Celery worker through ``SYNC_CELERY_BROKER_URL``
(dagster-celery); unset, the job's own executor runs as before. The choice is made when a run
starts, from the run worker's environment: importing the definitions reads nothing and
touches no network. A worker that dies mid-step fails that step (it never hangs the run).
The story: README, "Production: Celery workers".
"""

from __future__ import annotations

import time
from typing import Any

from dagster import Executor, ExecutorDefinition, InitExecutorContext

from sync_pipelines.redaction import register_secret
from sync_pipelines.settings import ConfigurationError, env

EXECUTOR_ENV = "SYNC_EXECUTOR"
BROKER_ENV = "SYNC_CELERY_BROKER_URL"
BACKEND_ENV = "SYNC_CELERY_BACKEND_URL"
QUEUE_ENV = "SYNC_CELERY_QUEUE"
DEFAULT_QUEUE = "dagster"
EXECUTORS = ("default", "celery")

# A worker running a step is pinged this often; after MISSED_PINGS silent pings its step fails.
PING_EVERY_SECONDS = 5.0
PING_TIMEOUT_SECONDS = 2.0
MISSED_PINGS = 3


def chosen_executor() -> str:
    """``SYNC_EXECUTOR``: ``default`` (unset) or ``celery``."""
    value = (env(EXECUTOR_ENV) or "default").strip().lower()
    if value not in EXECUTORS:
        raise ConfigurationError(f"{EXECUTOR_ENV} must be one of {', '.join(EXECUTORS)} (or unset), got {value!r}")
    return value


def celery_queue() -> str:
    """``SYNC_CELERY_QUEUE``: the queue steps are sent to and workers listen on (``dagster``)."""
    return env(QUEUE_ENV) or DEFAULT_QUEUE


def celery_app_config() -> dict[str, Any]:
    """Broker, result backend and Celery settings, shared by the run worker and the Celery workers."""
    broker = env(BROKER_ENV)
    if not broker:
        raise ConfigurationError(
            f"{EXECUTOR_ENV}=celery needs {BROKER_ENV} (e.g. pyamqp://user:password@rabbitmq:5672//)"
        )
    backend = env(BACKEND_ENV) or "rpc://"
    for url in (broker, backend):
        register_secret(_password(url))
    return {
        "broker": broker,
        "backend": backend,
        # STARTED (with the worker's hostname) is what lets the run worker ping the right worker.
        "config_source": {"task_default_queue": celery_queue(), "task_track_started": True},
    }


def _password(url: str) -> str | None:
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).password
    except ValueError:
        return None


def sync_executor(default: ExecutorDefinition) -> ExecutorDefinition:
    """``default`` (same name and config), or Celery when ``SYNC_EXECUTOR=celery`` at run start."""


    def create(init_context: InitExecutorContext) -> Executor:
        if chosen_executor() == "celery":
            return celery_executor_for_run(init_context)
        return default.executor_creation_fn(init_context)

    return ExecutorDefinition(
        name=default.name, config_schema=default.config_schema, executor_creation_fn=create,
        description=default.description, requirements=default.get_requirements,
    )


def celery_executor_for_run(init_context: InitExecutorContext) -> Executor:
    """The Celery executor for this run, refused with a clear message where it cannot work."""
    from dagster._core.definitions.reconstruct import ReconstructableJob
    from dagster._core.execution.retries import RetryMode

    config = celery_app_config()
    refuse_unless_postgres(init_context.instance)
    if not isinstance(init_context.job, ReconstructableJob):
        raise ConfigurationError(
            f"{EXECUTOR_ENV}=celery needs a job Celery workers can load by module: start the run from the "
            "Dagster CLI, webserver or daemon (execute_in_process keeps every step in its own process)"
        )
    refuse_shared_vendor_pools(init_context)
    retries = (init_context.executor_config or {}).get("retries") or {"enabled": {}}
    return WatchedCeleryExecutor(retries=RetryMode.from_config(retries), **config)


def refuse_unless_postgres(instance) -> None:
    """Celery workers on other machines read and write the run's events: SQLite files cannot be shared."""
    storage = type(instance.run_storage)
    if not storage.__module__.startswith("dagster_postgres"):
        raise ConfigurationError(
            f"{EXECUTOR_ENV}=celery needs Dagster storage in Postgres, shared by the run worker and every "
            f"Celery worker: set DAGSTER_PG_URL (or DAGSTER_PG_HOST/_USER/_PASSWORD/_DB) and DAGSTER_HOME to a "
            f"folder holding the project's dagster.yaml; this instance stores runs in {storage.__name__}"
        )


def refuse_shared_vendor_pools(init_context: InitExecutorContext) -> None:
    """Each step's HTTP rate limiter is per process: only a vendor pool of 1 makes it the vendor's budget."""
    job_def = init_context.job.get_definition()
    pools = {node.definition.pool for node in job_def.graph.nodes if getattr(node.definition, "pool", None)}
    storage = init_context.instance.event_log_storage
    for pool in sorted(pools):
        limit = storage.get_concurrency_info(pool).limit
        if limit is not None and limit > 1:
            raise ConfigurationError(
                f"pool {pool!r} lets {limit} steps talk to the vendor at once: on Celery workers each has its "
                f"own rate limiter, so the vendor would see {limit}x its budget. Set the pool back to 1 "
                f"(dagster instance concurrency set {pool} 1) or unset {EXECUTOR_ENV}"
            )


def _celery_classes():
    # dagster-celery (and celery) load only when the Celery executor is chosen
    from dagster_celery.core_execution_loop import core_celery_execution_loop
    from dagster_celery.executor import CeleryExecutor, _submit_task

    return CeleryExecutor, core_celery_execution_loop, _submit_task


class WatchedCeleryExecutor(Executor):
    """dagster-celery's executor, each step's Celery result watched for a dead worker."""

    def __init__(self, retries, broker: str, backend: str, config_source: dict[str, Any]):
        celery_executor_class, _, _ = _celery_classes()
        self._celery = celery_executor_class(retries=retries, broker=broker, backend=backend,
                                             config_source=config_source)

    @property
    def retries(self):
        return self._celery.retries

    def app_args(self) -> dict[str, Any]:
        return self._celery.app_args()

    def execute(self, plan_context, execution_plan):
        _, core_loop, submit_task = _celery_classes()

        def submit_watched(app, context, step, queue, priority, known_state):
            result = submit_task(app, context, step, queue, priority, known_state)
            return WatchedStepResult(app, context, step, result, known_state)

        return core_loop(plan_context, execution_plan, step_execution_fn=submit_watched)


class WatchedStepResult:
    """A step's Celery result that also turns ready, as a step failure, when its worker dies.

    A killed worker never answers: its task is gone from the broker (acknowledged when it
    started), so without this the run would wait for it forever.
    """

    def __init__(self, app, plan_context, step, result, known_state):
        self.app, self.plan_context, self.step = app, plan_context, step
        self.result, self.known_state = result, known_state
        self.missed_pings = 0
        self.worker: str | None = None
        self.lost: str | None = None
        self._next_ping = time.monotonic() + PING_EVERY_SECONDS

    def ready(self) -> bool:
        if self.lost or self.result.ready():
            return True
        if time.monotonic() < self._next_ping:
            return False
        self._next_ping = time.monotonic() + PING_EVERY_SECONDS
        info = self.result.info if self.result.state == "STARTED" else None
        self.worker = info.get("hostname") if isinstance(info, dict) else None
        if self.worker is None:  # still queued: no worker to ask yet
            self.missed_pings = 0
            return False
        answered = self.app.control.ping(destination=[self.worker], timeout=PING_TIMEOUT_SECONDS)
        self.missed_pings = 0 if answered else self.missed_pings + 1
        if self.missed_pings >= MISSED_PINGS:
            self.lost = f"Celery worker {self.worker} stopped answering ({MISSED_PINGS} pings) while it ran step {self.step.key}"
        return bool(self.lost)

    def get(self) -> list:
        from celery.exceptions import WorkerLostError

        if self.lost:
            return self._failure(self.lost)
        try:
            return self.result.get()
        except WorkerLostError as exc:  # the worker lived, its pool process running the step died
            return self._failure(f"Celery worker process running step {self.step.key} died: {exc}")

    def revoke(self) -> None:
        self.result.revoke()

    def _failure(self, message: str) -> list:
        """The step's failure event (logged now, which also frees its pool slot), serialized as a worker's."""
        from dagster._serdes import serialize_value
        from dagster._utils.error import SerializableErrorInfo

        error = SerializableErrorInfo(message=message, stack=[], cls_name="CeleryWorkerLost")
        step_context = self.plan_context.for_step(self.step)
        event = self.plan_context.executor.log_failure_or_retry_event_after_error(step_context, error, self.known_state)
        return [serialize_value(event)]


def worker_command(*, name: str | None, concurrency: int, loglevel: str, extra: list[str]) -> int:
    """``python -m sync_pipelines celery worker``: a Celery worker of this project, replacing this process."""
    import os
    import sys
    import uuid
    from pathlib import Path

    from sync_pipelines.instance.storage import postgres_url_from_env

    try:
        celery_app_config()  # refuse now, naming the variable, rather than in the worker's import
    except ConfigurationError as exc:
        raise SystemExit(str(exc)) from None
    if postgres_url_from_env() is None:
        raise SystemExit(
            "a Celery worker writes its steps' events to the Dagster storage of the runs: set DAGSTER_PG_URL "
            "(or DAGSTER_PG_HOST/_USER/_PASSWORD/_DB) as for the webserver, daemon and run workers"
        )
    bin_dir = str(Path(sys.executable).parent)  # the venv's bin: celery and dagster on PATH in the worker
    environment = {**os.environ, "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")])}
    node = f"{name or 'sync-' + uuid.uuid4().hex[:6]}@%h"
    command = [
        sys.executable, "-m", "celery", "-A", "sync_pipelines.celery_app", "worker",
        "--prefetch-multiplier=1", "-Q", celery_queue(), "-n", node, "-c", str(concurrency),
        "--loglevel", loglevel, *extra,
    ]
    os.execve(sys.executable, command, environment)
    return 0  # not reached
