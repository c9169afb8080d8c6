from __future__ import annotations

from app.services.router.evaluate import LabelledDM, evaluate
from app.services.router.models import Entities, Intent, RouteResult


def test_scores_intents_and_entities() -> None:
    answers = {
        "a": RouteResult(intent=Intent.PRICE, entities=Entities(sku="PT-0001"), source="local"),
        "b": RouteResult(intent=Intent.HOLD, entities=Entities(size="M"), source="llm"),
        "c": RouteResult(intent=Intent.OTHER, source="pattern"),
    }
    rows = [
        LabelledDM(text="a", intent=Intent.PRICE, entities=Entities(sku="PT-0001")),
        LabelledDM(text="b", intent=Intent.PRICE, entities=Entities(sku="PT-0002")),
        LabelledDM(text="c", intent=Intent.OTHER),
    ]
    report = evaluate(lambda text: answers[text], rows)
    assert report.total == 3
    assert report.accuracy == 2 / 3
    # entities: 1 right (PT-0001), 1 wrong (M), 1 missed (PT-0002)
    assert report.entity_precision == 0.5
    assert report.entity_recall == 0.5
    assert report.entity_f1 == 0.5
    assert report.per_intent["price"].recall == 0.5
    assert report.per_intent["price"].precision == 1.0
    assert report.per_intent["hold"].precision == 0.0
    assert report.confusion["price"] == {"price": 1, "hold": 1}
    assert report.sources == {"local": 1, "llm": 1, "pattern": 1}
    assert [m.text for m in report.mistakes] == ["b"]
    text = report.format()
    assert "intent accuracy: 0.6667" in text
    assert "'b': expected price" in text
