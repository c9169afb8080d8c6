"""Choose the local router's confidence threshold on the project's own held-out data.

    uv run python -m tools.router_data.tune_threshold

Two views, neither using the shared evaluation sets: (1) train on train.jsonl, measure on
holdout.jsonl (hand-written DMs never trained on); (2) train on 80 % of train.jsonl and
measure on the other 20 %, for three random splits. The threshold in `local.py` is the
one these curves favour; where they are flat, the lower value keeps more shop intents.
"""

from __future__ import annotations

import json
import random

from app.services.router.local import Example, load_examples, tune_threshold
from app.services.router.models import Intent
from tools.router_data.build_train import HOLDOUT_FILE

CANDIDATES = (0.0, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7)


def main() -> None:
    train = load_examples()
    holdout = [
        Example(text=row["text"], intent=Intent(row["intent"]))
        for row in map(json.loads, HOLDOUT_FILE.read_text(encoding="utf-8").splitlines())
    ]
    print("threshold  " + "  ".join(f"{c:>5.2f}" for c in CANDIDATES))
    curve = tune_threshold(train, holdout, CANDIDATES)
    print("holdout    " + "  ".join(f"{acc:>5.3f}" for _, acc in curve))
    for seed in (1, 2, 3):
        shuffled = list(train)
        random.Random(seed).shuffle(shuffled)
        cut = int(len(shuffled) * 0.8)
        curve = tune_threshold(shuffled[:cut], shuffled[cut:], CANDIDATES)
        print(f"split {seed}    " + "  ".join(f"{acc:>5.3f}" for _, acc in curve))


if __name__ == "__main__":
    main()
