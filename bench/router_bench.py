"""Local router benchmark: load (training) time and per-message latency.

    uv run python bench/router_bench.py [--rounds 5]

Prints the import time of the ML stack, the load time of the saved model, the training
time (what a process pays when the saved model is stale), and p50 / p99 / max latency
(wall clock, and CPU time of the routing thread) of `route_offline` (patterns, classifier
and entity extraction) per message, one message at a time as the worker calls it.
Messages: the project's held-out DMs and the shared dev set (when ../shared is there).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="passes over the messages")
    args = parser.parse_args()

    started = time.perf_counter()
    from app.core.config import Settings
    from app.services.router.local import MODEL_FILE, TRAIN_FILE, LocalRouter, load_or_train
    from app.services.router.router import HybridRouter
    from tools.router_data.build_train import HOLDOUT_FILE

    imported = time.perf_counter()
    local = load_or_train()
    loaded = time.perf_counter()
    LocalRouter.from_file()
    trained = time.perf_counter()
    router = HybridRouter(Settings(openai_api_key=None), local=local)

    texts = _messages(HOLDOUT_FILE)
    for text in texts[:20]:  # warm caches before timing
        router.route_offline(text)
    latencies: list[float] = []
    cpu: list[float] = []
    for _ in range(args.rounds):
        for text in texts:
            t0, c0 = time.perf_counter(), time.thread_time()
            router.route_offline(text)
            latencies.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.thread_time() - c0) * 1000)
    latencies.sort()
    cpu.sort()

    def pct(values: list[float], p: float) -> float:
        return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]

    print(f"import (numpy, the app; scikit-learn only when training): {imported - started:.3f} s")
    print(f"load ({MODEL_FILE.name}, the trained model): {loaded - imported:.3f} s")
    print(f"training on {TRAIN_FILE.name} (when the model is stale): {trained - loaded:.3f} s")
    print(f"messages timed: {len(latencies)} ({len(texts)} distinct x {args.rounds} rounds)")
    print(
        f"latency per message (wall): p50 {pct(latencies, 50):.3f} ms, "
        f"p99 {pct(latencies, 99):.3f} ms, max {latencies[-1]:.3f} ms, "
        f"mean {statistics.fmean(latencies):.3f} ms"
    )
    # CPU time of this thread only: what the routing costs, without the time the process
    # spent waiting for a core (other programs on a loaded 2-core machine inflate wall p99).
    print(
        f"cpu time per message: p50 {pct(cpu, 50):.3f} ms, p99 {pct(cpu, 99):.3f} ms, "
        f"max {cpu[-1]:.3f} ms"
    )


def _messages(holdout: Path) -> list[str]:
    files = [holdout]
    dev = PROJECT_ROOT.parent / "shared" / "eval" / "router_dev.jsonl"
    if dev.exists():
        files.append(dev)
    texts: list[str] = []
    for path in files:
        texts += [json.loads(line)["text"] for line in path.read_text().splitlines() if line]
    return texts


if __name__ == "__main__":
    main()
