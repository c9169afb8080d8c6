"""Layer 2 without a network: a TF-IDF + linear SVM intent classifier.

Trained when the process first needs it, on `data/train.jsonl` (the project's own
labelled DMs), in well under two seconds. Word unigrams and bigrams carry the meaning
("hold it", "how much"); character n-grams carry the spelling variants of DMs ("avail",
"availble", "thx", "measurmnts") that a word model would see as unknown.

Identifiers, money and other numbers are replaced by placeholder words before
featurising, so the model learns "a SKU was named" rather than memorising PT-0142.

Why a linear SVM and not logistic regression: on this data they are equally accurate
(measured on a held-out split and the dev set), but the SVM trains in about 0.2 s where
lbfgs logistic regression takes several seconds, and the router is trained at start-up.
Its margins are turned into a confidence with a softmax (see `_softmax`).

Its `hold` is only kept for a message it can read as one (see hold_gate): on text in a
script it never saw, the model still names an intent, and `hold` changes the shop.

Training takes about two seconds on a small machine, on every start of every process that
routes. So `tools.router_data.build_train` also saves the trained vocabularies and weights
(`data/model.npz`, no pickle: arrays only), stamped with a digest of what they were built
from (the training lines and the code that turns text into features). A process loads
that file in a fraction of the time; when the stamp does not match (someone changed the
lines or the features and did not rebuild), it trains instead, as before, and says so.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from app.core.logging import get_logger
from app.services.router import lexicon
from app.services.router.entities import extract_entities
from app.services.router.hold_gate import as_question, hold_is_read
from app.services.router.lexicon import generalise
from app.services.router.models import Intent, RouteResult

log = get_logger(__name__)

DATA_DIR = Path(__file__).resolve().parent / "data"
TRAIN_FILE = DATA_DIR / "train.jsonl"
MODEL_FILE = DATA_DIR / "model.npz"
# The files a saved model depends on: its lines, and the code that turns a line into
# features (placeholders, garment names). A change to any of them makes it stale.
MODEL_SOURCES: tuple[Path, ...] = (TRAIN_FILE, Path(__file__), Path(lexicon.__file__))

# Below this confidence the classifier is guessing, and a guessed shop intent makes the
# bot act on something the customer never asked; `other` lets the conversation ask again
# or show the menu instead. Chosen with `python -m tools.router_data.tune_threshold`
# on the project's own held-out DMs and random splits of train.jsonl (never on the shared
# evaluation sets): accuracy is flat up to about 0.4 and falls after 0.5.
DEFAULT_THRESHOLD = 0.35
MARGIN_SCALE = 4.0
# SVM regularisation: 0.5-2 measured within a point of each other on the held-out DMs.
DEFAULT_C = 1.0
# The classifier reads the start of a message; a pasted essay must not cost more time.
MAX_CLASSIFIED_CHARS = 1000

_ORDER_REF = re.compile(
    r"(?<![a-z0-9])ph[\s\-_#:.]*\d{1,5}\b|(?<![\w#])#\s?\d{5}\b|(?<=order )\d{5}\b"
)
_SKU_REF = re.compile(
    r"(?<![a-z0-9])pt[\s\-_#:.]*\d{1,4}\b"
    r"|\b(?:items?|skus?)\s*(?:number|num|no\.?|nr|[#:])?\s*#?\s*\d{1,4}\b|(?<![\w#])#\d{2,4}\b"
)
_MONEY = re.compile(
    r"[$£€]\s?\d+(?:[.,]\d+)?|(?<![\d.,])\d+(?:[.,]\d+)?\s?(?:[$£€]|dollars?|bucks|usd)\b"
    # "$$ for the fleece?": dollar signs alone ask for an amount
    r"|(?<![\w$])[$£€]{1,3}(?![\w$])"
)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_PLACEHOLDERS = frozenset(("zorderref", "zskuref", "zmoney", "znum", "zgarment", "zbrand"))


def prepare(text: str) -> str:
    """The text the vectorisers see: lowercase, ids and numbers as placeholder words."""
    text = unicodedata.normalize("NFKC", text).lower().replace("’", "'").replace("‘", "'")
    text = _ORDER_REF.sub(" zorderref ", text)
    text = _SKU_REF.sub(" zskuref ", text)
    text = _MONEY.sub(" zmoney ", text)
    text = _NUMBER.sub(" znum ", text)
    text = generalise(text)
    text = text.replace("'", "")
    # "sooooo", "pleeeease", "hiiii": stretched letters carry emphasis, not meaning.
    text = re.sub(r"([a-z])\1{2,}", r"\1\1", text)
    return " ".join(text.split())


# The vectorisers' settings: training builds scikit-learn's TfidfVectorizer from them, and
# `_Tfidf` transforms with the same analysers at run time.
_WORD_PATTERN = r"(?u)\b\w+\b|[^\w\s]"  # one-letter words ("u", "m"), emoji, punctuation
_WORD_NGRAMS = (1, 2)
_CHAR_NGRAMS = (2, 5)
_CHAR_MIN_DF = 2
_TOKENS = re.compile(_WORD_PATTERN)
_RUNS_OF_SPACE = re.compile(r"\s\s+")


def _word_terms(text: str) -> list[str]:
    """The terms of sklearn's "word" analyser: tokens, then pairs of adjacent tokens."""
    tokens: list[str] = _TOKENS.findall(text.lower())
    return tokens + [f"{first} {second}" for first, second in itertools.pairwise(tokens)]


def _char_terms(text: str) -> list[str]:
    """The terms of sklearn's "char_wb" analyser: character n-grams inside each word padded
    with a space, a word shorter than n counted once as a whole."""
    low, high = _CHAR_NGRAMS
    grams: list[str] = []
    for word in _RUNS_OF_SPACE.sub(" ", text.lower()).split():
        padded = f" {word} "
        for n in range(low, high + 1):
            grams.extend(padded[start : start + n] for start in range(max(1, len(padded) - n + 1)))
            if len(padded) <= n:
                break
    return grams


class _Tfidf:
    """One vectoriser's transform as training left it (sublinear tf, idf, l2 norm),
    computed from its terms and idf. Run time needs nothing more, and leaving scikit-learn
    and SciPy to training keeps them out of every worker and API process (about 80 MB of
    imports each); tests/services/router/test_local.py checks it against scikit-learn."""

    def __init__(
        self, terms: Sequence[str], idf: NDArray[np.float64], analyse: Callable[[str], list[str]]
    ) -> None:
        self.terms: NDArray[np.str_] = np.asarray(terms, dtype=np.str_)
        self.vocabulary = {str(term): column for column, term in enumerate(self.terms)}
        self.idf = np.asarray(idf, dtype=np.float64)
        self._analyse = analyse

    def margins(self, text: str, weights: NDArray[np.float64]) -> NDArray[np.float64]:
        """The text's feature row times `weights` (one row per term)."""
        counts = Counter(
            column
            for term in self._analyse(text)
            if (column := self.vocabulary.get(term)) is not None
        )
        if not counts:
            return np.zeros(weights.shape[1])
        columns = np.fromiter(counts.keys(), dtype=np.intp, count=len(counts))
        tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
        values = (1.0 + np.log(tf)) * self.idf[columns]
        values /= np.sqrt(values @ values)
        result: NDArray[np.float64] = values @ weights[columns]
        return result


def _train(
    texts: list[str], labels: list[str], c: float
) -> tuple[list[str], _Tfidf, _Tfidf, NDArray[np.float64], NDArray[np.float64]]:
    """Fit the vectorisers and the SVM with scikit-learn: (classes, word and char features,
    weights one row per feature and one column per class, bias)."""
    from scipy import sparse  # type: ignore[import-untyped]
    from sklearn.feature_extraction.text import TfidfVectorizer  # type: ignore[import-untyped]
    from sklearn.svm import LinearSVC  # type: ignore[import-untyped]

    words = TfidfVectorizer(
        ngram_range=_WORD_NGRAMS,
        token_pattern=_WORD_PATTERN,
        sublinear_tf=True,
        min_df=1,
    )
    chars = TfidfVectorizer(
        analyzer="char_wb", ngram_range=_CHAR_NGRAMS, sublinear_tf=True, min_df=_CHAR_MIN_DF
    )
    features = sparse.hstack([words.fit_transform(texts), chars.fit_transform(texts)]).tocsr()
    # A fixed random_state: liblinear shuffles, and the same file must give the same model.
    classifier = LinearSVC(C=c, random_state=0)
    classifier.fit(features, labels)
    coef: NDArray[np.float64] = classifier.coef_
    return (
        [str(label) for label in classifier.classes_],
        _Tfidf(words.get_feature_names_out(), words.idf_, _word_terms),
        _Tfidf(chars.get_feature_names_out(), chars.idf_, _char_terms),
        coef.T,
        classifier.intercept_,
    )


def model_digest(sources: Sequence[Path] = MODEL_SOURCES) -> str:
    digest = hashlib.sha256()
    for path in sources:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _softmax(margins: NDArray[np.float64]) -> NDArray[np.float64]:
    # SVM margins are roughly in [-2, 2]; scaling by MARGIN_SCALE before the softmax gives
    # confidences that spread over (0, 1) instead of all sitting near 1/11.
    scaled = margins * MARGIN_SCALE
    scaled -= scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    result: NDArray[np.float64] = exp / exp.sum(axis=1, keepdims=True)
    return result


@dataclass(frozen=True)
class Example:
    text: str
    intent: Intent


def load_examples(path: Path = TRAIN_FILE) -> list[Example]:
    examples: list[Example] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            examples.append(Example(text=str(row["text"]), intent=Intent(row["intent"])))
    return examples


class LocalRouter:
    """Classifies one DM in well under a millisecond once trained; thread-safe to call."""

    def __init__(
        self,
        examples: Sequence[Example],
        *,
        threshold: float = DEFAULT_THRESHOLD,
        c: float = DEFAULT_C,
    ) -> None:
        if not examples:
            raise ValueError("the local router needs training examples")
        self.threshold = threshold
        # Scoring one message through a scikit-learn Pipeline spends more time stacking
        # matrices and validating input than computing: keep the vocabularies and the
        # weights, split per vectoriser, and score with two small products instead.
        classes, words, chars, weights, bias = _train(
            [prepare(e.text) for e in examples], [e.intent.value for e in examples], c
        )
        n_words = len(words.vocabulary)
        self._set_parts(
            classes=[Intent(label) for label in classes],
            words=words,
            chars=chars,
            word_weights=weights[:n_words],
            char_weights=weights[n_words:],
            bias=bias,
        )

    def _set_parts(
        self,
        *,
        classes: list[Intent],
        words: _Tfidf,
        chars: _Tfidf,
        word_weights: NDArray[np.float64],
        char_weights: NDArray[np.float64],
        bias: NDArray[np.float64],
    ) -> None:
        if len(classes) < 3:
            raise ValueError("the local router needs examples of at least three intents")
        self._classes = classes
        self._words = words
        self._chars = chars
        self._word_weights = np.ascontiguousarray(word_weights, dtype=np.float64)
        self._char_weights = np.ascontiguousarray(char_weights, dtype=np.float64)
        self._bias = np.asarray(bias, dtype=np.float64)

    @classmethod
    def from_file(
        cls, path: Path = TRAIN_FILE, *, threshold: float = DEFAULT_THRESHOLD
    ) -> LocalRouter:
        return cls(load_examples(path), threshold=threshold)

    def save(self, path: Path = MODEL_FILE, *, digest: str) -> None:
        """The trained model as arrays (weights in float32: a tenth of a percent of a
        confidence at most, and half the file), stamped with what it was built from."""
        np.savez_compressed(
            path,
            digest=np.asarray(digest),
            classes=np.asarray([intent.value for intent in self._classes]),
            word_terms=self._words.terms,
            word_idf=self._words.idf,
            char_terms=self._chars.terms,
            char_idf=self._chars.idf,
            word_weights=self._word_weights.astype(np.float32),
            char_weights=self._char_weights.astype(np.float32),
            bias=self._bias,
        )

    @classmethod
    def load(
        cls, path: Path = MODEL_FILE, *, digest: str, threshold: float = DEFAULT_THRESHOLD
    ) -> LocalRouter | None:
        """The saved model, or None when there is none or it was built from other sources."""
        try:
            with np.load(path, allow_pickle=False) as saved:
                if str(saved["digest"]) != digest:
                    return None
                router = cls.__new__(cls)
                router.threshold = threshold
                router._set_parts(
                    classes=[Intent(str(label)) for label in saved["classes"]],
                    words=_Tfidf(saved["word_terms"], saved["word_idf"], _word_terms),
                    chars=_Tfidf(saved["char_terms"], saved["char_idf"], _char_terms),
                    word_weights=saved["word_weights"],
                    char_weights=saved["char_weights"],
                    bias=saved["bias"],
                )
                return router
        except FileNotFoundError:
            return None

    def probabilities(self, texts: Sequence[str]) -> NDArray[np.float64]:
        """One row per text, one column per intent in `self.classes` order."""
        margins = np.array(
            [
                self._words.margins(prepared, self._word_weights)
                + self._chars.margins(prepared, self._char_weights)
                for prepared in map(prepare, texts)
            ]
        ).reshape(len(texts), len(self._classes))
        return _softmax(margins + self._bias)

    @property
    def classes(self) -> list[Intent]:
        return list(self._classes)

    def classify(self, text: str) -> tuple[Intent, float]:
        """The most likely intent and its probability; `other` when below the threshold."""
        return self._pick(self._row(text))

    def _row(self, text: str) -> NDArray[np.float64]:
        row: NDArray[np.float64] = self.probabilities([text[:MAX_CLASSIFIED_CHARS]])[0]
        return row

    def _pick(self, row: NDArray[np.float64]) -> tuple[Intent, float]:
        best = int(np.argmax(row))
        confidence = float(row[best])
        if confidence < self.threshold:
            return Intent.OTHER, confidence
        return self._classes[best], confidence

    def readability(self, text: str) -> float:
        """The share of the message's letters that are in words the model learned: 0 for
        a script it never saw, for letters under combining marks, or for no letters."""
        total = known = 0
        for word in _letter_runs(prepare(text[:MAX_CLASSIFIED_CHARS])):
            if word in _PLACEHOLDERS:
                continue
            total += len(word)
            if word in self._words.vocabulary:
                known += len(word)
        return known / total if total else 0.0

    def route(self, text: str) -> RouteResult:
        row = self._row(text)
        intent, confidence = self._pick(row)
        result = RouteResult(
            intent=intent,
            entities=extract_entities(text),
            source="local",
            confidence=round(confidence, 4),
        )
        if intent is Intent.HOLD and not hold_is_read(
            text, readability=self.readability(text), confidence=confidence
        ):
            available = (
                round(float(row[self._classes.index(Intent.AVAILABILITY)]), 4)
                if Intent.AVAILABILITY in self._classes
                else None
            )
            return as_question(result, available)
        return result


def _letter_runs(prepared: str) -> list[str]:
    """Words as a reader sees them: letters together with the marks written on them, so
    that "ĥ̸̢̛e̵̡l̷̨l̶o̴̧" is one unknown word, not the known letters "e", "l" and "o" the
    vectoriser splits it into."""
    runs = "".join(
        ch if ch.isalpha() or unicodedata.category(ch).startswith("M") else " " for ch in prepared
    )
    return runs.split()


def tune_threshold(
    train: Sequence[Example], held_out: Sequence[Example], candidates: Iterable[float]
) -> list[tuple[float, float]]:
    """Accuracy on `held_out` of a router trained on `train`, for each candidate threshold."""
    router = LocalRouter(train, threshold=0.0)
    probabilities = router.probabilities([e.text for e in held_out])
    best = probabilities.argmax(axis=1)
    top = probabilities.max(axis=1)
    classes = router.classes
    truth = [e.intent for e in held_out]
    results: list[tuple[float, float]] = []
    for threshold in candidates:
        predicted = [
            Intent.OTHER if top[i] < threshold else classes[int(best[i])]
            for i in range(len(held_out))
        ]
        correct = sum(p == t for p, t in zip(predicted, truth, strict=True))
        results.append((threshold, correct / len(held_out)))
    return results


_shared: LocalRouter | None = None
_shared_lock = threading.Lock()


def get_local_router() -> LocalRouter:
    """The process-wide local router, loaded (or trained) on first use, once even under
    threads."""
    global _shared
    if _shared is None:
        with _shared_lock:
            if _shared is None:
                _shared = load_or_train()
    return _shared


def load_or_train() -> LocalRouter:
    """The saved model when it was built from the current lines and code; else trained."""
    saved = LocalRouter.load(digest=model_digest())
    if saved is not None:
        return saved
    log.warning(
        "router_model_stale",
        hint="uv run python -m tools.router_data.build_train rebuilds data/model.npz",
    )
    return LocalRouter.from_file()
