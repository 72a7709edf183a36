"""``SyncInstance``: the Dagster instance class both dagster.yaml files name (``instance_class``).

It is Dagster's own instance plus what a run worker does for run health
(``sync_pipelines/run_health.py``):

* when a run starts in this process: stamp the run with this worker (host, pid, process
  start), heal runs whose worker died (before any step of this run waits on a pool), and beat
  a heartbeat until the run ends;
* in a step worker process (a multiprocessing child of the run worker): die with the parent
  (``PR_SET_PDEATHSIG``, else a watch thread), so a killed run leaves no step calling a vendor;
* a step waiting on a pool neither spins a core nor ignores SIGTERM/SIGINT (see
  :class:`PatientConcurrencyContext`).
"""

from __future__ import annotations

import ctypes
import json
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from dagster import DagsterInstance
from dagster._core.errors import DagsterExecutionInterruptedError
from dagster._core.events import DagsterEventType
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext
from dagster._core.executor import in_process as _in_process_executor
from dagster._core.executor import multiprocess as _multiprocess_executor
from dagster._core.instance.ref import InstanceRef
from dagster._utils.interrupts import check_captured_interrupt

from sync_pipelines import run_health

log = logging.getLogger("sync_pipelines.instance")

RUN_END_EVENTS = {DagsterEventType.RUN_SUCCESS, DagsterEventType.RUN_FAILURE, DagsterEventType.RUN_CANCELED}
# A step blocked on a pool re-checks at most this often (Dagster 1.13.27's loop would spin).
BLOCKED_POLL_SECONDS = 0.2
PR_SET_PDEATHSIG = 1


class SyncInstance(DagsterInstance):
    @classmethod
    def config_schema(cls) -> dict[str, Any]:
        return {}

    @staticmethod
    def config_defaults(base_dir: str):
        return InstanceRef.config_defaults(base_dir)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._heartbeats: dict[str, threading.Event] = {}
        die_with_parent()
        try:
            claim_temporary_home(Path(self.root_directory))
        except OSError as exc:  # tidying must never stop a command
            log.warning("temporary Dagster homes not tidied: %s", exc)

    def handle_new_event(self, event, *, batch_metadata=None) -> None:
        super().handle_new_event(event, batch_metadata=batch_metadata)
        dagster_event = event.dagster_event
        if dagster_event is None or not event.run_id:
            return
        if dagster_event.event_type == DagsterEventType.RUN_START:
            self._worker_started(event.run_id)
        elif dagster_event.event_type in RUN_END_EVENTS and event.run_id in self._heartbeats:
            self._heartbeats.pop(event.run_id).set()

    def _worker_started(self, run_id: str) -> None:
        try:
            self.add_run_tags(run_id, run_health.worker_tags(run_id))
            run_health.beat(self, run_id)
            stop = self._heartbeats[run_id] = threading.Event()
            threading.Thread(
                target=self._beat_until, args=(run_id, stop), name=f"heartbeat-{run_id[:8]}", daemon=True
            ).start()
            report = run_health.heal_dead_runs(self, exclude_run_ids=[run_id], healer=f"run {run_id} at its start")
            for line in report.lines():
                if not line.startswith(("left", "held")):
                    log.warning(line)
        except Exception:  # run health must never fail the run itself
            log.exception("run health check at the start of run %s failed", run_id)

    def _beat_until(self, run_id: str, stop: threading.Event) -> None:
        while not stop.wait(run_health.HEARTBEAT_SECONDS):
            try:
                run_health.beat(self, run_id)
            except Exception as exc:  # storage restarting: the next beat tries again
                log.warning("heartbeat of run %s not written: %s", run_id, exc)


# The Dagster CLI without DAGSTER_HOME (`dagster job execute`, `dagster dev`) makes a
# temporary home in the working directory and deletes it on exit, which a SIGKILL skips.
TEMPORARY_HOME_PREFIX = ".tmp_dagster_home_"
OWNER_FILE = "sync_pipelines_owner.json"


def claim_temporary_home(root: Path) -> None:
    """On a CLI's temporary home: record its owner (this process), and delete the temporary
    homes next to it whose recorded owner is provably dead (``run_health.judge_worker``)."""
    if not root.name.startswith(TEMPORARY_HOME_PREFIX) or (root / OWNER_FILE).exists():
        return
    (root / OWNER_FILE).write_text(json.dumps(run_health.worker_tags()))
    for other in root.parent.glob(TEMPORARY_HOME_PREFIX + "*"):
        try:
            owner = json.loads((other / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # no owner recorded: not ours to judge
        if other != root and run_health.judge_worker(owner, None).state == "dead":
            shutil.rmtree(other, ignore_errors=True)
            log.info("deleted %s, the temporary Dagster home of a killed command", other)


def die_with_parent() -> None:
    """In a multiprocessing child (a step worker), end this process when its parent dies."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass
        else:
            if not parent.is_alive():  # it died before the prctl: nobody would signal
                os._exit(1)
            return
    threading.Thread(target=_exit_when_dead, args=(parent,), name="parent-watch", daemon=True).start()


def _exit_when_dead(parent: Any) -> None:
    while parent.is_alive():
        time.sleep(0.5)
    os._exit(1)


class PatientConcurrencyContext(InstanceConcurrencyContext):
    """Dagster's pool-slot claims, with a pause while blocked and healing while waiting.

    Dagster 1.13.27's executors re-try a blocked claim in a tight loop (the multiprocess
    loop has no sleep; ``interval_to_next_pending_claim_check`` returns ``min(0, ...)``, so
    the in-process one sleeps 0 s): a waiting run burned a core. Here each blocked claim
    pauses so the loop turns at most every :data:`BLOCKED_POLL_SECONDS`, and every
    ``run_health.BLOCKED_HEAL_SECONDS`` of waiting the dead runs holding slots are healed.
    """

    raise_on_interrupt = False

    def __init__(self, instance: DagsterInstance, dagster_run: Any) -> None:
        super().__init__(instance, dagster_run)
        self._last_pause = 0.0
        self._next_heal = time.monotonic() + run_health.BLOCKED_HEAL_SECONDS

    def claim(self, concurrency_key: str, step_key: str, step_priority: int = 0) -> bool:
        if self.raise_on_interrupt and check_captured_interrupt():
            raise DagsterExecutionInterruptedError(f"interrupted while {step_key} waited on pool {concurrency_key}")
        if super().claim(concurrency_key, step_key, step_priority):
            return True
        self._while_blocked()
        return False

    def _while_blocked(self) -> None:
        now = time.monotonic()
        wait = self._last_pause + BLOCKED_POLL_SECONDS - now
        if wait > 0:
            time.sleep(wait)
        self._last_pause = time.monotonic()
        if self._last_pause >= self._next_heal:
            self._next_heal = self._last_pause + run_health.BLOCKED_HEAL_SECONDS
            try:
                run_health.heal_dead_runs(self._instance, exclude_run_ids=[self._run_id], healer=f"run {self._run_id} waiting on a pool")
            except Exception:
                log.exception("run health check of a waiting run failed")


class InterruptiblePatientConcurrencyContext(PatientConcurrencyContext):
    """The in-process executor's loop never looks at a captured SIGTERM/SIGINT: raise it here."""

    raise_on_interrupt = True


# Only processes on this project's instance load this module (dagster.yaml names the class).
_multiprocess_executor.InstanceConcurrencyContext = PatientConcurrencyContext
_in_process_executor.InstanceConcurrencyContext = InterruptiblePatientConcurrencyContext
