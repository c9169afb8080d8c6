"""Run as a script: a clean process (no test-runner threads) that uses the worker runtime,
forks like Celery's prefork pool, and reports what each side saw as JSON."""

from __future__ import annotations

import gc
import json
import os
import sys

from sqlalchemy import text

from app.worker import tasks
from app.worker.runtime import WorkerRuntime, get_runtime, run_async


async def backend_pid(rt: WorkerRuntime) -> int:
    async with rt.engine.connect() as connection:
        return int((await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one())


def main() -> None:
    parent_runtime = get_runtime()
    parent_before = run_async(backend_pid)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        code = 1
        try:
            tasks._after_fork()  # what Celery's worker_process_init signal runs
            gc.collect()  # finalizers of anything inherited run now, not by chance later
            child_runtime = get_runtime()
            report = {
                "fresh_runtime": child_runtime is not parent_runtime,
                "fresh_loop": child_runtime.loop is not parent_runtime.loop,
                "backend": run_async(backend_pid),
            }
            os.write(write, json.dumps(report).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    _, status = os.waitpid(child, 0)
    child_report = json.loads(os.read(read, 4096) or b"{}")
    print(
        json.dumps(
            {
                "child_exit": os.waitstatus_to_exitcode(status),
                "child": child_report,
                "parent_before": parent_before,
                "parent_after": run_async(backend_pid),
            }
        )
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
