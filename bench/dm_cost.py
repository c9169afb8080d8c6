"""What one DM costs the worker: SQL statements, transactions and CPU time.

    python -m bench.dm_cost N     (run by `make bench` with the stack's environment)

Handles N customers' first DMs, then a second DM from each of them, in this process
exactly as the event task does (the pipeline the task builds, on a worker runtime),
counting every statement the engine sends with SQLAlchemy's `before_cursor_execute`
event, the transactions (BEGIN ... COMMIT) apart from the statements that commit on their
own, and the CPU time of the process. Prints one JSON line, with the figures of first
and returning DMs apart. The reply is sent from this process too, as the worker sends it
(claimed in the turn's transaction, recorded after the call); the echo TikTok sends for
it goes to the stack's webhook and is not counted here. BENCH_STATEMENTS=1 lists the statements
on stderr; BENCH_PROFILE=FILE writes a cProfile of the measured DMs.
"""

from __future__ import annotations

import cProfile
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from typing import Any

from sqlalchemy import event

from app.core.config import get_settings
from app.core.logging import configure_logging
from app.worker.runtime import WorkerRuntime
from app.worker.tasks import _pipeline
from bench.__main__ import QUESTIONS, webhook_body

# Set by `make bench` (BENCH_CALLGRIND=1) when it runs this under valgrind's callgrind.
UNDER_CALLGRIND = "BENCH_UNDER_CALLGRIND"


def callgrind(option: str) -> None:
    """Zero (-z) or dump (-d) callgrind's counts of this process, when it runs under it."""
    if os.environ.get(UNDER_CALLGRIND):
        subprocess.run(
            ["callgrind_control", option, str(os.getpid())],
            check=True,
            stdout=subprocess.DEVNULL,
        )


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    settings = get_settings()
    configure_logging(settings)  # as the worker does: its log level, its renderer
    runtime = WorkerRuntime(settings)
    counts = {"statements": 0, "transactions": 0, "on_their_own": 0}

    shapes: Counter[str] = Counter()

    def on_statement(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        counts["statements"] += 1
        shapes[" ".join(statement.split())[:110]] += 1

    def on_begin(connection: Any) -> None:
        # An autocommit connection sends no BEGIN: its statement commits by itself.
        autocommit = connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT"
        counts["on_their_own" if autocommit else "transactions"] += 1

    event.listen(runtime.engine.sync_engine, "before_cursor_execute", on_statement)
    event.listen(runtime.engine.sync_engine, "begin", on_begin)
    pipeline = _pipeline(runtime)
    run = uuid.uuid4().hex[:8]

    def dm(n: int) -> bytes:
        return webhook_body(f"cost-{run}-{n}", QUESTIONS[n % len(QUESTIONS)])

    for n in range(10):  # warm: caches, prepared statements, the router
        runtime.run(pipeline.handle(dm(-1 - n).decode()))
    profile = cProfile.Profile() if os.environ.get("BENCH_PROFILE") else None
    figures: dict[str, float] = {"dms": count}
    # A customer's first DM creates them and their conversation; later ones find both.
    for kind in ("first", "returning"):
        counts.update(statements=0, transactions=0, on_their_own=0)
        shapes.clear()
        callgrind("-z")  # the counts so far (start-up, the warm DMs) are not the DMs'
        cpu, wall = time.process_time(), time.perf_counter()
        if profile is not None:
            profile.enable()
        for n in range(count):
            runtime.run(pipeline.handle(dm(n).decode()))
        if profile is not None:
            profile.disable()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        callgrind("-d")  # this kind's counts, in a file of their own
        figures |= {
            f"{kind}_statements_per_dm": counts["statements"] / count,
            f"{kind}_transactions_per_dm": counts["transactions"] / count,
            f"{kind}_statements_on_their_own_per_dm": counts["on_their_own"] / count,
            f"{kind}_cpu_ms_per_dm": cpu * 1000 / count,
            f"{kind}_wall_ms_per_dm": wall * 1000 / count,
        }
        if os.environ.get("BENCH_STATEMENTS"):  # which statements a DM costs, most frequent first
            print(f"-- {kind} DM", file=sys.stderr)
            for shape, seen in shapes.most_common():
                print(f"{seen / count:5.2f}  {shape}", file=sys.stderr)
    if profile is not None:
        profile.dump_stats(os.environ["BENCH_PROFILE"])  # pstats, for a look at where it goes
    runtime.close()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
