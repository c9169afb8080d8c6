"""Real people's words from licensed public corpora, relabelled to Philia's intents.

    uv run python -m tools.router_data.corpora hwu64 PATH/TO/NLU-Evaluation-Data

Writes `corpora/<name>.jsonl` (`text`, `intent`, `source`, `source_intent`), which
`build_train` adds to the training set. The derived files are committed: building the
training set never needs the network or the original checkout. README.md records each
source, its licence and how its intents were mapped.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

from app.services.router.models import Intent

CORPORA_DIR = Path(__file__).resolve().parent / "corpora"

# HWU64 (Liu et al. 2019, "Benchmarking Natural Language Understanding Services for
# building Conversational Agents"; CC BY 4.0): requests to a home assistant. Every domain
# is off-topic for a clothes shop, which is the point: weather, food, music and trains
# must not reach the shop's intents. Left out: the conversational replies (yes, no,
# "repeat that", "stop"), whose meaning depends on the bot's last message.
HWU64_LEFT_OUT = frozenset(
    (
        "general_affirm",
        "general_commandstop",
        "general_confirm",
        "general_dontcare",
        "general_explain",
        "general_negate",
        "general_repeat",
    )
)
# Praise with a thank-you in it is a thank-you; other praise ("nice one") is left out.
_THANKS = re.compile(r"\b(thanks?|thank you|thx|ty)\b", re.IGNORECASE)
# The assistants' wake words say nothing about the request.
_WAKE_WORD = re.compile(
    r"^\s*(?:hey\s+|ok\s+)?(?:olly|alexa|cortana|siri|google|pda)\b[\s,:.!-]*|"
    r"[\s,]+(?:olly|alexa|cortana|siri|pda)\s*([.!?]*)\s*$",
    re.IGNORECASE,
)
PER_SOURCE_INTENT = 24


def hwu64_rows(checkout: Path) -> list[dict[str, str]]:
    """The annotated utterances, read from the cross-validation split of fold 1 (its train
    and test parts hold every annotated line once)."""
    fold = next(checkout.glob("CrossValidation/autoGeneFromRealAnno/*/CrossValidation/KFold_1"))
    rows: list[dict[str, str]] = []
    for part in ("trainset", "testset/csv"):
        for path in sorted((fold / part).glob("*.csv")):
            text = path.read_text(encoding="utf-8", errors="replace")
            rows.extend(csv.DictReader(io.StringIO(text), delimiter=";"))
    return rows


def clean(text: str) -> str | None:
    text = text.strip().strip("<>").strip()
    if "[" in text or "]" in text or not text:
        return None  # annotated slots ("[date : tomorrow]") are not what people type
    text = _WAKE_WORD.sub(lambda m: m.group(1) or "", text).strip()
    return " ".join(text.split()) or None


def hwu64(checkout: Path) -> list[dict[str, str]]:
    by_source_intent: dict[str, dict[str, Intent]] = defaultdict(dict)
    for row in hwu64_rows(checkout):
        source_intent = f"{row['scenario']}_{row['intent']}"
        if source_intent in HWU64_LEFT_OUT:
            continue
        text = clean(row.get("answer_from_user") or "")
        if text is None:
            continue
        if source_intent == "general_praise":
            if not _THANKS.search(text):
                continue
            intent = Intent.THANKS
        else:
            intent = Intent.OTHER
        by_source_intent[source_intent].setdefault(text, intent)
    out: list[dict[str, str]] = []
    for source_intent, texts in sorted(by_source_intent.items()):
        # A fixed, spread-out sample: the same checkout always gives the same lines.
        chosen = sorted(texts, key=lambda t: hashlib.sha256(t.encode()).hexdigest())
        for text in chosen[:PER_SOURCE_INTENT]:
            out.append(
                {
                    "text": text,
                    "intent": texts[text].value,
                    "source": "hwu64",
                    "source_intent": source_intent,
                }
            )
    return out


SOURCES = {"hwu64": hwu64}


def main(argv: list[str]) -> None:
    if len(argv) != 2 or argv[0] not in SOURCES:
        raise SystemExit(f"usage: corpora {{{'|'.join(SOURCES)}}} PATH/TO/CHECKOUT")
    name, checkout = argv[0], Path(argv[1])
    rows = SOURCES[name](checkout)
    CORPORA_DIR.mkdir(exist_ok=True)
    target = CORPORA_DIR / f"{name}.jsonl"
    with target.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} lines to {target}")


if __name__ == "__main__":
    main(sys.argv[1:])
