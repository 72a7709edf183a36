"""Run one sync job in process, in a process of its own (what a worker does), so that a test
can SIGKILL it midway or start two at once: ``python -m sync_pipelines_tests.faults.run_job
<job> <run config JSON> [partition]``. Exits 0 if the run succeeded, 1 if it failed."""

from __future__ import annotations

import json
import sys

from dagster import DagsterInstance


def main(argv: list[str]) -> int:
    from sync_pipelines.definitions import defs

    job_name, run_config = argv[0], json.loads(argv[1])
    partition = argv[2] if len(argv) > 2 else None
    with DagsterInstance.ephemeral() as instance:
        if partition is not None:
            instance.add_dynamic_partitions("procore_connections", [partition])
        result = defs.resolve_job_def(job_name).execute_in_process(
            run_config=run_config, instance=instance, partition_key=partition, raise_on_error=False,
        )
    print(f"run_job {job_name}: {'success' if result.success else 'failure'}", flush=True)
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
