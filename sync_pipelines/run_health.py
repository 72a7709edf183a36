"""Runs whose worker died: found, failed (saying so) and their pool slots freed.

A run executed by ``dagster job execute`` or the default run launcher has no worker Dagster
can check (run monitoring only logs "Checking run"), so a SIGKILLed or OOM-killed run stays
STARTED and keeps its vendor's pool slot (limit 1) for ``max_runtime_seconds``. Here each run
worker stamps its run with who it is (host, pid, the process's start time, boot and pid
namespace: tags ``sync_pipelines/worker_*``) and writes a heartbeat every few seconds
(Dagster's key-value store). :func:`heal_dead_runs` fails a STARTING/STARTED run only when
its worker is provably dead: on the same host (same boot, same pid namespace) its process is
gone or the pid now belongs to a younger process; elsewhere its heartbeat is older than
:data:`HEARTBEAT_STALE_SECONDS`. A run with no stamp, or a fresh heartbeat, is never touched
automatically. The failure is an ordinary run failure, so run retries and
``sync_failure_alert_sensor`` treat it like any other; ``run_health_sensor`` itself retries
one the policy would retry but Dagster's daemon cannot (no code-location origin), whichever
healer failed it (tag ``sync_pipelines/worker_died``).

Called at the start of every run (before any step waits on a pool, and again every
:data:`BLOCKED_HEAL_SECONDS` while one waits), by ``run_health_sensor`` in the daemon, and by
``python -m sync_pipelines runs heal``. The stamping is done by
``sync_pipelines.instance.SyncInstance``.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)
from dagster._core.events import JobFailureData, RunFailureReason
from dagster._core.storage.tags import (
    PARENT_RUN_ID_TAG,
    RETRY_NUMBER_TAG,
    ROOT_RUN_ID_TAG,
    TAGS_TO_MAYBE_OMIT_ON_RETRY,
    WILL_RETRY_TAG,
)

from sync_pipelines.retries import NO_RUN_RETRY_TAGS

log = logging.getLogger("sync_pipelines.run_health")

WORKER_TAG_PREFIX = "sync_pipelines/worker_"
HOST_TAG = "sync_pipelines/worker_host"
PID_TAG = "sync_pipelines/worker_pid"
# The run the worker tags were stamped for: a retry inherits its parent's tags until it starts.
WORKER_RUN_TAG = "sync_pipelines/worker_run"
# "<boot id>/<pid namespace>/<process start time in clock ticks since boot>"
PROCESS_TAG = "sync_pipelines/worker_process"
HEARTBEAT_KEY_PREFIX = "sync_pipelines/heartbeat/"
HEARTBEAT_SECONDS = 10.0
# A worker on another host whose heartbeat is this old is taken for dead (9 missed beats).
HEARTBEAT_STALE_SECONDS = 90.0
# A run waiting on a pool heals again this often (a dead run elsewhere goes stale meanwhile).
BLOCKED_HEAL_SECONDS = 30.0
WORKER_DIED = "Run worker died"
# Set on a run failed here, whoever the healer, so run_health_sensor retries it even when a
# run's start check or an operator failed it first.
WORKER_DIED_TAG = "sync_pipelines/worker_died"
# With no cursor yet (first tick), runs failed this recently are still retried.
RETRY_LOOKBACK_SECONDS = 600.0
IN_PROGRESS = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _process_start_ticks(pid: int) -> str | None:
    """Field 22 of ``/proc/<pid>/stat``: when the process started (None: no such process, or no /proc)."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after its last ")"
    return stat.rsplit(")", 1)[1].split()[19]


def _process_identity(pid: int) -> str:
    boot = _read("/proc/sys/kernel/random/boot_id") or ""
    try:
        pid_ns = os.readlink("/proc/self/ns/pid")
    except OSError:
        pid_ns = ""
    return f"{boot}/{pid_ns}/{_process_start_ticks(pid) or ''}"


def worker_tags(run_id: str | None = None) -> dict[str, str]:
    """The tags naming this process as a run's worker (as ``run_id``'s, when given)."""
    pid = os.getpid()
    tags = {HOST_TAG: socket.gethostname(), PID_TAG: str(pid), PROCESS_TAG: _process_identity(pid)}
    return {**tags, WORKER_RUN_TAG: run_id} if run_id else tags


def own_worker_tags(run_id: str, tags: dict[str, str]) -> dict[str, str]:
    """The run's worker tags if stamped for this run, else none (inherited from the run it retries)."""
    stamped_for = tags.get(WORKER_RUN_TAG)
    if stamped_for == run_id or (stamped_for is None and PARENT_RUN_ID_TAG not in tags):
        return tags
    return {k: v for k, v in tags.items() if not k.startswith(WORKER_TAG_PREFIX)}


def heartbeat_key(run_id: str) -> str:
    return HEARTBEAT_KEY_PREFIX + run_id


def beat(instance: DagsterInstance, run_id: str) -> None:
    instance.run_storage.set_cursor_values({heartbeat_key(run_id): repr(time.time())})


@dataclass(frozen=True)
class WorkerVerdict:
    state: str  # "alive", "dead" or "unknown"
    reason: str


def judge_worker(tags: dict[str, str], heartbeat: float | None, now: float | None = None) -> WorkerVerdict:
    """Whether the worker the tags name is alive, provably dead, or cannot be told from here."""
    now = time.time() if now is None else now
    host, pid_text, process = tags.get(HOST_TAG), tags.get(PID_TAG), tags.get(PROCESS_TAG, "")
    if not host or not (pid_text or "").isdigit():
        return WorkerVerdict("unknown", "no worker recorded (started before run health checks, or never came up)")
    pid = int(pid_text)
    boot, _, rest = process.partition("/")
    pid_ns, _, start_ticks = rest.rpartition("/")
    here_boot, _, here_rest = _process_identity(os.getpid()).partition("/")
    here_ns = here_rest.rpartition("/")[0]
    if host == socket.gethostname() and boot and boot == here_boot and pid_ns == here_ns:
        now_ticks = _process_start_ticks(pid)
        if now_ticks is None:
            return WorkerVerdict("dead", f"its worker process (pid {pid} on {host}) is gone")
        if start_ticks and now_ticks != start_ticks:
            return WorkerVerdict("dead", f"its worker process (pid {pid} on {host}) is gone (the pid is another process's now)")
        return WorkerVerdict("alive", f"worker pid {pid} on {host} is running")
    if host == socket.gethostname() and boot and here_boot and boot != here_boot and pid_ns == here_ns:
        return WorkerVerdict("dead", f"its worker (pid {pid} on {host}) ran before {host} restarted")
    if heartbeat is None:
        return WorkerVerdict("unknown", f"worker pid {pid} on {host}: no heartbeat recorded")
    age = now - heartbeat
    if age > HEARTBEAT_STALE_SECONDS:
        return WorkerVerdict("dead", f"its worker (pid {pid} on {host}) sent no heartbeat for {age:.0f}s")
    return WorkerVerdict("alive", f"worker pid {pid} on {host} sent a heartbeat {age:.0f}s ago")


@dataclass
class HealReport:
    """What :func:`heal_dead_runs` found and did (or, dry, would do)."""

    failed: list[tuple[str, str, str]] = field(default_factory=list)  # (run id, job, reason)
    kept: list[tuple[str, str, str]] = field(default_factory=list)  # (run id, job, why not touched)
    freed: list[tuple[str, list[str]]] = field(default_factory=list)  # (run id, "pool|step" slots)
    held: list[tuple[str, list[str]]] = field(default_factory=list)  # slots of live or undecided runs

    def lines(self, dry_run: bool = False) -> list[str]:
        verb = "would fail" if dry_run else "failed"
        out = [f"{verb} run {r} ({job}): {why}" for r, job, why in self.failed]
        out += [f"left run {r} ({job}): {why}" for r, job, why in self.kept]
        free_verb = "would free" if dry_run else "freed"
        out += [f"{free_verb} slots of run {r}: {', '.join(slots)}" for r, slots in self.freed]
        out += [f"held by run {r}: {', '.join(slots)}" for r, slots in self.held]
        return out


def _heartbeats(instance: DagsterInstance, run_ids: Iterable[str]) -> dict[str, float]:
    keys = {heartbeat_key(r) for r in run_ids}
    if not keys:
        return {}
    values = instance.run_storage.get_cursor_values(keys)
    out = {}
    for key, value in values.items():
        try:
            out[key[len(HEARTBEAT_KEY_PREFIX):]] = float(value)
        except ValueError:
            pass
    return out


def held_slots(instance: DagsterInstance) -> dict[str, list[str]]:
    """Pool slots claimed or waited for, by run id (``"pool|step"``, a waiting step ``"pool|step (pending)"``)."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return {}
    held: dict[str, list[str]] = {}
    for key in sorted(storage.get_concurrency_keys()):
        info = storage.get_concurrency_info(key)
        for slot in info.claimed_slots:
            held.setdefault(slot.run_id, []).append(f"{key}|{slot.step_key}")
        for pending in info.pending_steps:
            held.setdefault(pending.run_id, []).append(f"{key}|{pending.step_key} (pending)")
    return held


def heal_dead_runs(
    instance: DagsterInstance,
    *,
    dry_run: bool = False,
    exclude_run_ids: Iterable[str] = (),
    force_run_ids: Iterable[str] = (),
    free_finished_after: float | None = None,
    healer: str = "run health check",
) -> HealReport:
    """Fail the in-progress runs whose worker is provably dead and free their pool slots.

    ``force_run_ids``: runs to fail even when undecidable (never when provably alive).
    ``free_finished_after``: also free slots still held by runs that ended this many seconds
    ago (default: the instance's ``free_slots_after_run_end_seconds``; 0 = at once).
    """
    report = HealReport()
    exclude, force = set(exclude_run_ids), set(force_run_ids)
    records = instance.get_run_records(filters=RunsFilter(statuses=IN_PROGRESS))
    beats = _heartbeats(instance, [r.dagster_run.run_id for r in records])
    healed: set[str] = set()
    for record in records:
        run = record.dagster_run
        if run.run_id in exclude:
            continue
        verdict = judge_worker(own_worker_tags(run.run_id, dict(run.tags)), beats.get(run.run_id))
        if verdict.state == "unknown" and run.run_id in force:
            verdict = WorkerVerdict("dead", f"failed by hand ({verdict.reason})")
        if verdict.state != "dead":
            report.kept.append((run.run_id, run.job_name, verdict.reason))
            continue
        report.failed.append((run.run_id, run.job_name, verdict.reason))
        healed.add(run.run_id)
        if dry_run:
            continue
        current = instance.get_run_by_id(run.run_id)
        if current is None or current.status not in IN_PROGRESS:
            continue  # it ended meanwhile
        message = f"{WORKER_DIED}: {verdict.reason}. Marked failed by the {healer} on {socket.gethostname()}."
        log.warning("run %s (%s): %s", run.run_id, run.job_name, message)
        instance.add_run_tags(run.run_id, {WORKER_DIED_TAG: "true"})
        instance.report_run_failed(
            current, message, JobFailureData(error=None, failure_reason=RunFailureReason.UNEXPECTED_TERMINATION)
        )

    held = held_slots(instance)
    if free_finished_after is None:
        free_finished_after = float(instance.run_monitoring_settings.get("free_slots_after_run_end_seconds") or 0)
    others = [r for r in held if r not in healed]
    finished = {}
    if others:
        for record in instance.get_run_records(filters=RunsFilter(run_ids=others)):
            finished[record.dagster_run.run_id] = record
    ended_beats = _heartbeats(instance, [r for r, rec in finished.items() if rec.dagster_run.is_finished])
    now = time.time()
    for run_id, slots in held.items():
        record = finished.get(run_id)
        if run_id in healed:
            free = True
        elif record is None:
            free = run_id not in exclude  # the run was deleted: nobody will give them back
        elif record.dagster_run.is_finished and run_id not in exclude:
            # Ended (maybe failed by Dagster's code server when its worker crashed): its slots are
            # free once its worker is provably gone, else after the instance's grace period.
            ended = record.end_time or record.update_timestamp.timestamp()
            tags = own_worker_tags(run_id, dict(record.dagster_run.tags))
            worker_gone = judge_worker(tags, ended_beats.get(run_id)).state == "dead"
            free = run_id in force or worker_gone or now - ended >= free_finished_after
        else:
            free = False
        if not free:
            report.held.append((run_id, slots))
            continue
        report.freed.append((run_id, slots))
        if not dry_run:
            instance.event_log_storage.free_concurrency_slots_for_run(run_id)
    return report


def heal_command(*, dry_run: bool, run_ids: list[str]) -> int:
    """``python -m sync_pipelines runs heal``: print what was found and done."""
    from sync_pipelines.instance import operator_instance

    with operator_instance() as instance:
        report = heal_dead_runs(
            instance, dry_run=dry_run, force_run_ids=run_ids, free_finished_after=0, healer="operator (runs heal)"
        )
        lines = report.lines(dry_run)
        print("\n".join(lines) if lines else "no stuck run, no held pool slot")
        unknown = {r for r, _job, _why in report.kept} - set(run_ids)
        missing = set(run_ids) - {r for r, *_ in report.failed} - {r for r, *_ in report.kept}
        for run_id in sorted(missing):
            print(f"run {run_id}: not STARTING/STARTED (nothing to fail)")
        if unknown and not dry_run:
            print("runs left alone are alive or undecidable; `--run RUN_ID` fails an undecidable one")
    return 0


def retry_request(instance: DagsterInstance, run_id: str) -> RunRequest | None:
    """The retry of a run just failed here that the run-retry policy would retry but Dagster's
    daemon cannot (no code-location origin: a ``dagster job execute`` run), else None."""
    run = instance.get_run_by_id(run_id)
    if run is None or run.status != DagsterRunStatus.FAILURE or run.remote_job_origin is not None:
        return None  # a run with an origin is retried by Dagster's daemon: never twice
    if run.op_selection or any(run.tags.get(k) == v for k, v in NO_RUN_RETRY_TAGS.items()):
        return None  # a RunRequest cannot select ops; a configuration error stays failed
    # Dagster tags its own policy decision (enabled, dagster/max_retries, run group size) on failure.
    if run.tags.get(WILL_RETRY_TAG) != "true":
        return None
    group = instance.get_run_group(run.run_id)
    retry_number = len(list(group[1])) if group else 1
    inherited = {
        k: v for k, v in run.tags.items()
        if k not in TAGS_TO_MAYBE_OMIT_ON_RETRY and not k.startswith(WORKER_TAG_PREFIX)
    }
    lineage = {
        PARENT_RUN_ID_TAG: run.run_id,
        ROOT_RUN_ID_TAG: run.root_run_id or run.run_id,
        RETRY_NUMBER_TAG: str(retry_number),
    }
    return RunRequest(
        run_key=f"retry-of-{run.run_id}",  # one retry per dead run, however many ticks see it
        job_name=run.job_name,
        run_config=run.run_config,
        tags={**inherited, **lineage},
        asset_selection=list(run.asset_selection) if run.asset_selection else None,
    )


def _runs_failed_for_a_dead_worker(instance: DagsterInstance, cursor: str | None) -> tuple[list[str], str]:
    """Runs failed here (by any healer) since ``cursor`` (a run update time), and the next cursor."""
    after = float(cursor) if cursor else time.time() - RETRY_LOOKBACK_SECONDS
    records = instance.get_run_records(filters=RunsFilter(
        statuses=[DagsterRunStatus.FAILURE], tags={WORKER_DIED_TAG: "true"},
        updated_after=datetime.fromtimestamp(after, timezone.utc),
    ))
    newest = max([after, *(r.update_timestamp.timestamp() for r in records)])
    return [r.dagster_run.run_id for r in records], repr(newest)


def build_run_health_sensor(jobs: Sequence) -> SensorDefinition:
    """``run_health_sensor``, able to retry a run of any of ``jobs`` (all the location's jobs)."""

    @sensor(
        name="run_health_sensor",
        description=(
            "Fails runs whose worker died (no process, no heartbeat), frees the pool slots they hold,"
            " and retries the ones Dagster's run retries cannot (started by `dagster job execute`)."
        ),
        minimum_interval_seconds=30,
        default_status=DefaultSensorStatus.RUNNING,
        jobs=list(jobs),
    )
    def run_health_sensor(context: SensorEvaluationContext) -> SensorResult:
        report = heal_dead_runs(context.instance, healer="daemon's run_health_sensor")
        done = [line for line in report.lines() if not line.startswith(("left", "held"))]
        for line in done:
            context.log.warning(line)
        died, cursor = _runs_failed_for_a_dead_worker(context.instance, context.cursor)
        run_ids = dict.fromkeys([run_id for run_id, *_ in report.failed] + died)
        retries = [r for r in (retry_request(context.instance, run_id) for run_id in run_ids) if r]
        for request in retries:
            context.log.warning(f"retrying run {request.tags[PARENT_RUN_ID_TAG]} ({request.job_name})")
        if retries:
            return SensorResult(run_requests=retries, cursor=cursor)
        skip = "; ".join(done) if done else "no run with a dead worker, no slot to free"
        return SensorResult(skip_reason=skip, cursor=cursor)

    return run_health_sensor
