"""Real people's words from licensed public corpora, relabelled to Philia's intents.

    uv run python -m tools.router_data.corpora hwu64 PATH/TO/NLU-Evaluation-Data
    uv run python -m tools.router_data.corpora bitext PATH/TO/Bitext_Sample_...Dataset.csv
    uv run python -m tools.router_data.corpora banking77 PATH/TO/task-specific-datasets

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
    return _sampled("hwu64", by_source_intent, PER_SOURCE_INTENT)


# Bitext customer-support training sample (Bitext Innovations, repository
# `bitext/customer-support-llm-chatbot-training-dataset`, file
# `data/train/Bitext_Sample_Customer_Support_Training_Dataset.csv` at commit 337b968;
# CDLA-Sharing-1.0): customers' requests to an online shop's support, with the typos,
# swearing and odd synonyms ("reimbursement", "delivery period") of real support queues.
# Its intents that are a shop question here, mapped; the rest (invoices, reviews,
# newsletters, address changes) are left out, as their answer in a TikTok DM is unclear.
BITEXT_INTENTS: dict[str, Intent] = {
    "track_order": Intent.ORDER_STATUS,
    "delivery_period": Intent.POLICY,
    "delivery_options": Intent.POLICY,
    "check_refund_policy": Intent.POLICY,
    "check_payment_methods": Intent.POLICY,
    "check_cancellation_fee": Intent.POLICY,
    # Acting on an order (cancelling, changing it, paying it back) is a person's job.
    "cancel_order": Intent.HUMAN,
    "change_order": Intent.HUMAN,
    "get_refund": Intent.HUMAN,
    "track_refund": Intent.HUMAN,
    "payment_issue": Intent.HUMAN,
    "complaint": Intent.HUMAN,
    "contact_human_agent": Intent.HUMAN,
    "contact_customer_service": Intent.HUMAN,
    # Buying with no piece named: what is there to buy (PRODUCT.md: `hold` needs a piece).
    "place_order": Intent.AVAILABILITY,
    # A TikTok shop has no website accounts: these are not the shop's questions.
    "create_account": Intent.OTHER,
    "delete_account": Intent.OTHER,
    "edit_account": Intent.OTHER,
    "switch_account": Intent.OTHER,
    "recover_password": Intent.OTHER,
    "registration_problems": Intent.OTHER,
}
# "how soon can I expect my parcel" asks where one's own order is, not how long shipping
# takes in general: Bitext files both under delivery_period.
_OWN_PARCEL = re.compile(
    r"\b(?:my|mine)\s+(?:\w+\s+)?(?:order|package|parcel|purchase|item|product|delivery|shipment|stuff|goods|things)\b",
    re.IGNORECASE,
)
BITEXT_PER_INTENT = 40


def bitext(checkout: Path) -> list[dict[str, str]]:
    path = checkout
    if checkout.is_dir():
        path = next(checkout.rglob("Bitext_Sample_Customer_Support_Training_Dataset*.csv"))
    by_source_intent: dict[str, dict[str, Intent]] = defaultdict(dict)
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            source_intent = row["intent"]
            intent = BITEXT_INTENTS.get(source_intent)
            text = " ".join(row["instruction"].split())
            if intent is None or not text or "{{" in text:
                continue
            if source_intent == "delivery_period" and _OWN_PARCEL.search(text):
                intent = Intent.ORDER_STATUS
            by_source_intent[source_intent].setdefault(text, intent)
    return _sampled("bitext", by_source_intent, BITEXT_PER_INTENT)


def _sampled(
    source: str, by_source_intent: dict[str, dict[str, Intent]], per_intent: int
) -> list[dict[str, str]]:
    """A fixed, spread-out sample per source intent: the same input gives the same lines."""
    out: list[dict[str, str]] = []
    for source_intent, texts in sorted(by_source_intent.items()):
        chosen = sorted(texts, key=lambda t: hashlib.sha256(t.encode()).hexdigest())
        for text in chosen[:per_intent]:
            out.append(
                {
                    "text": text,
                    "intent": texts[text].value,
                    "source": source,
                    "source_intent": source_intent,
                }
            )
    return out


# Banking77 (Casanueva et al. 2020, "Efficient Intent Detection with Dual Sentence
# Encoders"; repository `PolyAI-LDN/task-specific-datasets`, `banking_data/train.csv`;
# CC BY 4.0): customers' questions to a bank. Off-topic here, and worded like support
# requests ("my transfer hasn't arrived", "can I deposit a cheque"), which the assistant
# corpora are not. Left out: the intents a shop's customer could ask in the same words
# (refunds, card payments and their fees, declined or pending payments, which cards or
# wallets are accepted, a card's delivery, charges twice or unrecognised).
BANKING77_LEFT_OUT = frozenset(
    (
        "Refund_not_showing_up", "request_refund", "card_arrival", "card_delivery_estimate",
        "order_physical_card", "get_physical_card", "cancel_transfer", "transaction_charged_twice",
        "card_payment_fee_charged", "card_payment_not_recognised",
        "card_payment_wrong_exchange_rate",
        "declined_card_payment", "pending_card_payment", "reverted_card_payment?",
        "apple_pay_or_google_pay", "supported_cards_and_currencies", "visa_or_mastercard",
        "country_support", "card_acceptance", "card_not_working", "contactless_not_working",
        "extra_charge_on_statement", "direct_debit_payment_not_recognised",
    )
)  # fmt: skip
BANKING77_PER_INTENT = 8


def banking77(checkout: Path) -> list[dict[str, str]]:
    path = checkout / "banking_data" / "train.csv" if checkout.is_dir() else checkout
    by_source_intent: dict[str, dict[str, Intent]] = defaultdict(dict)
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            text = " ".join(row["text"].split())
            if row["category"] in BANKING77_LEFT_OUT or not text:
                continue
            by_source_intent[row["category"]].setdefault(text, Intent.OTHER)
    return _sampled("banking77", by_source_intent, BANKING77_PER_INTENT)


SOURCES = {"hwu64": hwu64, "bitext": bitext, "banking77": banking77}


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
