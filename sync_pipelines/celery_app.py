"""The Celery app this project's workers run (``python -m sync_pipelines celery worker``).

dagster-celery's tasks on the broker, result backend and queue of ``SYNC_CELERY_*``, read when
``celery -A sync_pipelines.celery_app`` first asks for ``app`` (importing this module reads
nothing). Unlike ``dagster-celery worker start -y``, nothing (no broker password) is written
to a file.
"""

from __future__ import annotations

from functools import cache
from typing import Any


@cache
def worker_app() -> Any:
    from dagster_celery.executor import CeleryExecutor
    from dagster_celery.make_app import make_app
    from dagster_celery.tasks import create_execute_job_task, create_resume_job_task, create_task

    from sync_pipelines.executors import celery_app_config

    app = make_app(CeleryExecutor.for_cli(**celery_app_config()).app_args())
    create_task(app)
    create_execute_job_task(app)
    create_resume_job_task(app)
    return app


def __getattr__(name: str) -> Any:
    if name == "app":  # what `celery -A` looks up
        return worker_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
