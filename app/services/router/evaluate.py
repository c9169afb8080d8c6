"""Measuring a router on a labelled JSON Lines file: accuracy, per-intent precision and
recall, entity F1 and the confusion matrix. Used by the CLI, the tests and the bench."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from app.services.router.models import Entities, Intent, RouteResult

ENTITY_FIELDS: tuple[str, ...] = ("order_number", "sku", "size")


class LabelledDM(BaseModel):
    model_config = ConfigDict(extra="ignore")

    text: str
    intent: Intent
    entities: Entities = Field(default_factory=Entities)


class IntentScore(BaseModel):
    precision: float
    recall: float
    f1: float
    support: int


class Mistake(BaseModel):
    text: str
    expected: Intent
    got: Intent
    expected_entities: dict[str, str]
    got_entities: dict[str, str]
    source: str


class EvalReport(BaseModel):
    total: int
    accuracy: float
    entity_precision: float
    entity_recall: float
    entity_f1: float
    per_intent: dict[str, IntentScore]
    # confusion[expected][predicted] = count
    confusion: dict[str, dict[str, int]]
    sources: dict[str, int]
    mistakes: list[Mistake]

    def format(self, *, show_mistakes: bool = True) -> str:
        lines = [
            f"messages: {self.total}",
            f"intent accuracy: {self.accuracy:.4f}",
            f"entity precision: {self.entity_precision:.4f}  recall: {self.entity_recall:.4f}"
            f"  F1: {self.entity_f1:.4f}",
            "answered by: " + ", ".join(f"{k}={v}" for k, v in sorted(self.sources.items())),
            "",
            f"{'intent':<13} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>7}",
        ]
        for name, score in self.per_intent.items():
            lines.append(
                f"{name:<13} {score.precision:>9.3f} {score.recall:>7.3f} {score.f1:>7.3f}"
                f" {score.support:>7}"
            )
        names = [intent.value for intent in Intent]
        short = [name[:6] for name in names]
        lines += ["", "confusion (rows: expected, columns: predicted)"]
        lines.append(f"{'':<13}" + "".join(f"{s:>7}" for s in short))
        for expected in names:
            row = self.confusion.get(expected, {})
            lines.append(f"{expected:<13}" + "".join(f"{row.get(p, 0):>7}" for p in names))
        if show_mistakes and self.mistakes:
            lines += ["", "mistakes:"]
            for m in self.mistakes:
                lines.append(
                    f"  {m.text!r}: expected {m.expected.value} {m.expected_entities},"
                    f" got {m.got.value} {m.got_entities} ({m.source})"
                )
        return "\n".join(lines)


def read_labelled(path: Path) -> list[LabelledDM]:
    rows: list[LabelledDM] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(LabelledDM.model_validate_json(line))
        except ValueError as error:
            raise ValueError(f"{path}:{number}: not a labelled DM: {error}") from error
    return rows


def _entity_pairs(entities: Entities) -> set[tuple[str, str]]:
    dumped = entities.model_dump()
    return {(name, str(dumped[name])) for name in ENTITY_FIELDS if name in dumped}


def _ratio(numerator: int, denominator: int, empty: float = 1.0) -> float:
    return numerator / denominator if denominator else empty


def _f1(precision: float, recall: float) -> float:
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def evaluate(route: Callable[[str], RouteResult], rows: Iterable[LabelledDM]) -> EvalReport:
    rows = list(rows)
    confusion: dict[str, Counter[str]] = {intent.value: Counter() for intent in Intent}
    sources: Counter[str] = Counter()
    mistakes: list[Mistake] = []
    correct = tp = fp = fn = 0
    for row in rows:
        result = route(row.text)
        sources[result.source] += 1
        confusion[row.intent.value][result.intent.value] += 1
        expected_pairs = _entity_pairs(row.entities)
        got_pairs = _entity_pairs(result.entities)
        tp += len(expected_pairs & got_pairs)
        fp += len(got_pairs - expected_pairs)
        fn += len(expected_pairs - got_pairs)
        if result.intent == row.intent:
            correct += 1
        if result.intent != row.intent or expected_pairs != got_pairs:
            mistakes.append(
                Mistake(
                    text=row.text,
                    expected=row.intent,
                    got=result.intent,
                    expected_entities=dict(expected_pairs),
                    got_entities=dict(got_pairs),
                    source=result.source,
                )
            )
    per_intent: dict[str, IntentScore] = {}
    for intent in Intent:
        name = intent.value
        hit = confusion[name][name]
        predicted = sum(confusion[other][name] for other in confusion)
        support = sum(confusion[name].values())
        # As scikit-learn's zero_division=0: no predictions or no examples score 0.
        precision = _ratio(hit, predicted, empty=0.0)
        recall = _ratio(hit, support, empty=0.0)
        per_intent[name] = IntentScore(
            precision=precision, recall=recall, f1=_f1(precision, recall), support=support
        )
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    return EvalReport(
        total=len(rows),
        accuracy=_ratio(correct, len(rows), empty=0.0),
        entity_precision=precision,
        entity_recall=recall,
        entity_f1=_f1(precision, recall),
        per_intent=per_intent,
        confusion={k: dict(v) for k, v in confusion.items()},
        sources=dict(sources),
        mistakes=mistakes,
    )
