"""Reading a customer's words: which pieces they name ("the jacket", "that carhart tee"),
whether they say yes, ask for the waitlist, haggle, or state their own size.

Item matching is typo-tolerant (rapidfuzz) and weighs each word by how rare it is in the
catalogue, so "carhartt" points at the Carhartt pieces while "vintage" barely counts.
"""

from __future__ import annotations

import math
import re
import unicodedata
from array import array
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from rapidfuzz import fuzz, process

from app.db.repositories.items import SearchRow
from app.services.identifiers import normalize_size

# fmt: off
STOPWORDS = frozenset([
    "a", "about", "above", "actually", "add", "after", "again", "all", "also", "am", "amazing",
    "an", "and", "angle", "angles", "any", "anyone", "anything", "are", "around", "as", "at", "av",
    "avail", "availability", "available", "awesome", "b", "back", "baggy", "be", "been", "before",
    "being", "below", "best", "between", "big", "both", "bucks", "bundle", "bundles", "but", "buy",
    "by", "c", "can", "cant", "cart", "cheaper", "checkout", "close", "closeup", "closeups", "code",
    "condition", "cool", "cost", "costs", "could", "coupon", "cropped", "cute", "d", "deal",
    "deals", "detail", "details", "did", "discount", "discounts", "do", "does", "doesnt", "dollars",
    "dont", "down", "e", "each", "even", "f", "few", "final", "firm", "fit", "fits", "fitting",
    "for", "free", "from", "g", "get", "give", "go", "gonna", "got", "gotta", "grab", "great", "h",
    "had", "has", "have", "having", "he", "hello", "her", "here", "hers", "hey", "hi", "him", "his",
    "hiya", "hold", "holding", "hoping", "how", "i", "id", "if", "ill", "im", "image", "images",
    "in", "inch", "inches", "info", "interested", "into", "is", "isnt", "it", "item", "items",
    "itll", "its", "ive", "j", "join", "just", "k", "keep", "kind", "know", "l", "large", "left",
    "length", "less", "let", "lg", "like", "line", "list", "lmk", "lol", "long", "look", "looking",
    "loose", "love", "low", "lower", "m", "made", "make", "may", "maybe", "me", "measure",
    "measurement", "measurements", "med", "medium", "mine", "more", "most", "much", "my", "n",
    "need", "negotiable", "negotiate", "new", "nice", "no", "nope", "normally", "not", "notify",
    "now", "o", "obo", "of", "off", "offer", "offers", "oh", "ok", "okay", "omg", "on", "once",
    "one", "ones", "only", "or", "other", "our", "out", "over", "oversized", "own", "p", "pay",
    "perfect", "photo", "photos", "pic", "pics", "picture", "pictures", "piece", "pieces", "pit",
    "please", "pls", "plz", "posted", "price", "priced", "pricing", "promo", "purchase", "put", "q",
    "queue", "quick", "r", "re", "really", "reserve", "reserved", "run", "runs", "s", "sale",
    "same", "save", "say", "says", "see", "sell", "selling", "send", "she", "ship", "shipping",
    "should", "show", "sign", "size", "sized", "sizes", "sizing", "sm", "small", "snug", "so",
    "sold", "some", "someone", "soon", "still", "stock", "stuff", "such", "sure", "t", "tag",
    "tagged", "take", "tell", "than", "thank", "thanks", "that", "thats", "the", "their", "them",
    "then", "there", "these", "they", "thing", "things", "this", "thnx", "those", "through", "thx",
    "tight", "to", "today", "tomorrow", "too", "true", "ty", "typically", "u", "ups", "ur", "us",
    "usd", "usually", "v", "very", "video", "videos", "w", "waist", "wait", "waiting", "waitlist",
    "wanna", "want", "was", "we", "wear", "wearing", "well", "were", "what", "whats", "when",
    "where", "which", "while", "who", "why", "will", "with", "wore", "work", "would", "wow", "x",
    "xl", "xlarge", "xs", "xxl", "xxlarge", "y", "yes", "yet", "yo", "you", "your", "youre",
    "yours", "z",
])
# The state of a piece ("any stains?"): asked about a piece, never naming one.
STOPWORDS |= frozenset([
    "stain", "stains", "stained", "flaw", "flaws", "flawed", "damage", "damaged", "hole",
    "holes", "rip", "rips", "ripped", "tear", "tears", "worn", "wear", "pilling", "defect",
    "defects", "mark", "marks", "fading", "faded", "shape", "authentic", "legit",
])
# fmt: on

# Words that ask for something themselves: a message with one of these is not a bare
# "which one" answer even if it names a piece.
# fmt: off
ACTION_WORDS = frozenset([
    "hold", "reserve", "buy", "take", "purchase", "price", "cost", "much", "size", "fit", "fits",
    "measure", "measurements", "ship", "shipping", "available", "availability", "sold", "waitlist",
    "discount", "offer", "deal",
])

# Customer words for categories: "jacket" finds outerwear even when no title says so.
CATEGORY_WORDS: dict[str, str] = {
    **dict.fromkeys([
        "top", "tops", "tee", "tees", "tshirt", "shirt", "shirts", "hoodie", "hoodies", "sweater",
        "sweaters", "sweatshirt", "sweatshirts", "crewneck", "crew", "polo", "jumper", "cardigan",
        "flannel", "knit", "blouse", "tank", "jersey",
    ], "tops"),
    **dict.fromkeys([
        "jacket", "jackets", "coat", "coats", "puffer", "puffers", "fleece", "windbreaker", "parka",
        "outerwear", "vest", "anorak", "bomber",
    ], "outerwear"),
    **dict.fromkeys([
        "jeans", "jean", "pants", "trousers", "skirt", "skirts", "shorts", "bottoms", "denim",
        "cargos", "slacks",
    ], "bottoms"),
    **dict.fromkeys([
        "dress", "dresses", "gown", "maxi",
    ], "dresses"),
    **dict.fromkeys([
        "shoe", "sneakers", "sneaker", "kicks", "trainers", "boots", "boot", "sandals", "heels",
        "loafers",
    ], "shoes"),
    **dict.fromkeys([
        "bag", "bags", "purse", "necklace", "chain", "jewelry", "jewellery", "accessory",
        "accessories", "belt", "hat", "cap", "scarf", "wallet", "sunglasses",
    ], "accessories"),
}
# fmt: on

_EXACT = 1.0
_CATEGORY = 0.6  # a category word names every piece of it, weaker than a title word
_FUZZY_MIN = 84.0
_TIE_SHARE = 0.8  # pieces within this share of the best score are "several matches"
_CONTEXT_SHARE = 0.5  # a piece of the conversation this close to the best is the one meant


def simplify(text: str) -> str:
    """Lowercase words: accents, apostrophes ("levi's" -> "levis") and punctuation gone."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = text.lower().replace("'", "").replace("’", "")
    text = re.sub(r"\bt[\s-]shirts?\b", "tshirt", text)
    return re.sub(r"[^a-z0-9]+", " ", text).strip()


_NOT_NAME = re.compile(
    r"(?:pt|ph)[\s\-_#:.]*\d+|#\s?\d+|\b(?:items?|skus?|pieces?)\s*#?\s*\d+|[$£€]\s?\d+(?:[.,]\d+)?|\d+(?:[.,]\d+)?\s?(?:[$£€%]|dollars?|bucks|usd)",
    re.IGNORECASE,
)


def tokens(text: str) -> list[str]:
    """Words that could name a piece: no identifiers, amounts or short numbers (sizes)."""
    words = simplify(_NOT_NAME.sub(" ", text)).split()
    return [w for w in words if (w.isdigit() and len(w) >= 3) or (not w.isdigit() and len(w) >= 2)]


def content_words(text: str) -> list[str]:
    return [w for w in tokens(text) if w not in STOPWORDS and len(w) >= 3]


@dataclass(frozen=True)
class Match:
    skus: list[str]  # best first; several when the words do not tell them apart
    unmatched: list[str]  # content words that name no piece


def _sku_of(row: SearchRow) -> str:
    return row.sku


class IndexBuilder:
    """An `ItemMatcher` built from rows that come in SKU order, batch by batch: a large
    catalogue is read a batch at a time, so that it never sits in memory as rows at once.
    The index lives as long as the process, so what it keeps is a few large arrays rather
    than tens of thousands of small objects: those would be scattered among the reading's
    leftovers and keep their memory from going back to the OS."""

    def __init__(self) -> None:
        self.skus: list[str] = []
        self.word_ids: dict[str, int] = {}
        self.pair_words, self.pair_pieces = array("q"), array("q")
        self.categories: dict[str, int] = {}
        self.category_of = array("q")

    def add(self, rows: Iterable[SearchRow]) -> None:
        for row in rows:
            if self.skus and self.skus[-1] == row.sku:
                continue  # the first row of a SKU names it
            n = len(self.skus)
            self.skus.append(row.sku)
            self.category_of.append(self.categories.setdefault(row.category, len(self.categories)))
            name = simplify(" ".join(filter(None, (row.title, row.brand, row.color))))
            for word in {*name.split(), row.category}:
                self.pair_words.append(self.word_ids.setdefault(word, len(self.word_ids)))
                self.pair_pieces.append(n)

    def matcher(self) -> ItemMatcher:
        matcher = ItemMatcher.__new__(ItemMatcher)  # the index is this one, not one of rows
        matcher._adopt(self)
        return matcher


class ItemMatcher:
    """Scores pieces against a customer's words.

    Each word is looked up once in the catalogue's vocabulary (exactly, then fuzzily with
    rapidfuzz over the distinct words), so the cost grows with the vocabulary rather than
    with pieces times words; the pieces' scores are numpy arrays, so a word shared by
    thousands of pieces (a category word in a shop that has sold 20,000) costs a vector
    operation, not a Python loop over them.
    """

    def __init__(self, rows: Iterable[SearchRow]) -> None:
        """The index of `rows`, in any order (a SKU's first row names it)."""
        building = IndexBuilder()
        building.add(sorted(rows, key=_sku_of))  # stable: a SKU's rows keep their order
        self._adopt(building)

    def _adopt(self, building: IndexBuilder) -> None:
        skus = building.skus
        self._skus = np.array(skus, dtype=str) if skus else np.array([], dtype="U1")
        self._vocabulary = _group(building.word_ids, building.pair_words, building.pair_pieces)
        self._by_category = _group(
            building.categories, building.category_of, array("q", range(len(skus)))
        )
        self._fuzzy_words = [w for w in self._vocabulary if len(w) >= 4 and not w.isdigit()]

    def __len__(self) -> int:
        return len(self._skus)

    def _position(self, sku: str) -> int | None:
        n = int(np.searchsorted(self._skus, sku))
        return n if n < len(self._skus) and self._skus[n] == sku else None

    def _hits(self, word: str) -> np.ndarray:
        """How strongly `word` names each piece: exact 1, category word 0.6, typo <= 0.9."""
        hits = np.zeros(len(self))
        if len(word) >= 4 and not word.isdigit():
            for candidate, score, _ in process.extract(
                word, self._fuzzy_words, scorer=fuzz.ratio, score_cutoff=_FUZZY_MIN, limit=None
            ):
                found = self._vocabulary[candidate]
                hits[found] = np.maximum(hits[found], score / 100 * 0.9)
        category = CATEGORY_WORDS.get(word)
        if category is not None and category in self._by_category:
            found = self._by_category[category]
            hits[found] = np.maximum(hits[found], _CATEGORY)
        if word in self._vocabulary:
            hits[self._vocabulary[word]] = _EXACT
        return hits

    def _scores(self, text: str) -> tuple[np.ndarray, list[str]]:
        words = list(dict.fromkeys(content_words(text)))
        scores = np.zeros(len(self))
        unmatched: list[str] = []
        if not len(self):
            return scores, words
        for word in words:
            hits = self._hits(word)
            named = int(np.count_nonzero(hits))
            if not named:
                unmatched.append(word)
                continue
            # A word shared by many pieces tells little about which one is meant.
            scores += hits * math.log(1 + len(self) / named)
        return scores, unmatched

    def unmatched(self, text: str) -> list[str]:
        """The content words of `text` that name no piece at all."""
        return self._scores(text)[1]

    def match(self, text: str, context: Iterable[str] = (), limit: int | None = None) -> Match:
        """The pieces `text` names, best first (the first `limit` of them). Pieces of the
        conversation (`context`: just listed or discussed) win when they match reasonably
        well: after a video with a jacket and jeans, "the jacket" is that jacket, not the
        best jacket of the shop."""
        scores, unmatched = self._scores(text)
        best = float(scores.max()) if len(scores) else 0.0
        if best <= 0:
            return Match([], unmatched)
        known = [n for n in map(self._position, context) if n is not None]
        pool = [n for n in known if scores[n] >= best * _CONTEXT_SHARE]
        if pool:
            best = max(float(scores[n]) for n in pool)
            ranked = np.array([n for n in pool if scores[n] >= best * _TIE_SHARE], dtype=np.intp)
        else:
            ranked = np.flatnonzero(scores >= best * _TIE_SHARE)
        # Best score first, then SKU order (the indices' order).
        ranked = ranked[np.lexsort((ranked, -scores[ranked]))][:limit]
        # Only the pieces asked for become strings: a brand word of a shop that has sold
        # thousands of pieces ties hundreds of them.
        return Match(self._skus[ranked].tolist(), unmatched)


def _group(keys: dict[str, int], key_of: array[int], pieces: array[int]) -> dict[str, np.ndarray]:
    """key -> the sorted pieces paired with it (each pair once), as views of one array."""
    key_array = np.frombuffer(key_of, dtype=np.int64)
    piece_array = np.frombuffer(pieces, dtype=np.int64)
    order = np.lexsort((piece_array, key_array))
    grouped = piece_array[order].astype(np.intp)
    bounds = np.searchsorted(key_array[order], np.arange(len(keys) + 1))
    return {key: grouped[bounds[n] : bounds[n + 1]] for key, n in keys.items()}


# --- What kind of message is it ----------------------------------------------------------

_YES_WORD = (
    r"(?:yes+|yeah|yea|yep|yup|ya|yas+|ye|sure|ok|okay|k|please|pls|plz|do it|go ahead"
    r"|go for it|absolutely|definitely|of course|sounds good|deal|lets do it|lets go"
    r"|i want it|i want that|hold it|add me|sign me up|put me on it|alright)"
)
_POLITE = r"(?:please|pls|plz|thanks|thank you|ty|for sure|then)"
_YES = re.compile(rf"(?:oh\s+|ah\s+)?{_YES_WORD}(?:\s+(?:{_YES_WORD}|{_POLITE})){{0,3}}")
_NO = re.compile(
    r"(?:no+|nope|nah|no thanks|no thank you|not now|maybe later|im good|all good|never ?mind"
    r"|nvm|no worries)(?:\s+(?:thanks|thank you|ty))?"
)
_WAITLIST = re.compile(
    r"\b(?:wait\s?list|waiting\s+list|notify\s+me|let\s+me\s+know\s+(?:if|when)"
    r"|(?:tell|message|dm|text|ping)\s+me\s+(?:if|when)|keep\s+me\s+posted|in\s+line\s+for)\b"
)
_HAGGLE = re.compile(
    r"(?:[$£€]\s?\d|\d\s?(?:dollars?|bucks|usd|%)|\b(?:offer|offers|discount|discounts|deal|deals"
    r"|cheaper|lower|less|negotiable|negotiate|haggle|bundle|bundles|coupon|code|promo|sale"
    r"|obo|flexible|wiggle|best price|do better|knock|reduce|reduced|off"
    r"|(?:take|do|accept|pay|give you|for|at|go)\s+\d+)\b)"
)
_RELEASE = re.compile(
    r"\b(?:cancel|release|drop|remove|undo|let go of|unhold)\b.*\bhold\b"
    r"|\bunhold\b|\b(?:dont|do not|no longer) (?:want|need) (?:it|this|that|the \w+)"
)
_SKU_MENTION = re.compile(r"(?<![a-z0-9])pt[\s\-_#:.]*(\d{1,4})(?![\d.,]?\d)", re.IGNORECASE)
_REFERENCE = re.compile(r"\b(?:it|its|this|that|these|those|them|this one|that one)\b")


def is_yes(text: str) -> bool:
    return _YES.fullmatch(simplify(text)) is not None


def is_no(text: str) -> bool:
    return _NO.fullmatch(simplify(text)) is not None


def asks_waitlist(text: str) -> bool:
    return _WAITLIST.search(simplify(text)) is not None


def haggles(text: str) -> bool:
    return _HAGGLE.search(text.lower()) is not None


_PHOTO = re.compile(r"\b(?:pics?|pictures?|photos?|images?|close ?ups?|another angle)\b")


def wants_photo(text: str) -> bool:
    return _PHOTO.search(simplify(text)) is not None


def releases_hold(text: str) -> bool:
    """ "cancel my hold", "I don't want it anymore": the customer lets their hold go."""
    return _RELEASE.search(simplify(text)) is not None


def all_skus(text: str) -> list[str]:
    """Every PT- SKU written in the message, in order ("hold PT-0014 and PT-0015")."""
    found = [f"PT-{int(match.group(1)):04d}" for match in _SKU_MENTION.finditer(text)]
    return list(dict.fromkeys(found))


_CONDITION = re.compile(
    r"\b(?:condition|stains?|stained|flaws?|flawed|damaged?|holes?|rips?|ripped|tears?|wear"
    r"|worn|fading|faded|pilling|defects?|marks?|smell|smells|vintage|authentic|real|fake)\b"
)


def asks_condition(text: str) -> bool:
    """ "any stains?", "what's the condition", "is it vintage?": the piece's state."""
    return _CONDITION.search(simplify(text)) is not None


def refers_back(text: str) -> bool:
    """ "is *it* still available", "how about that one": a piece from earlier is meant."""
    return _REFERENCE.search(simplify(text)) is not None


def has_action_word(text: str) -> bool:
    return any(word in ACTION_WORDS for word in simplify(text).split())


_SIZE_TOKEN = (
    r"xx[\s-]?large|x[\s-]?large|extra[\s-]?large|x[\s-]?small|extra[\s-]?small|xxl|2xl|xl|xs"
    r"|small|medium|large|med|lg|sm|s|m|l|\d{1,2}(?:\.5)?"
)
_OWN_SIZE = re.compile(
    r"\b(?P<cue>i\s?'?m|i\s+am|i\s+(?:usually\s+|normally\s+|typically\s+|always\s+)?"
    r"(?:wear|take|fit|fit\s+into|buy)|my\s+size\s+is|my\s+size\s+s|usually|normally|typically)\s+"
    r"(?P<filler>(?:(?:usually|normally|typically|always|mostly|a|an|size|sized|in|around|like)\s+){0,3})"
    rf"(?P<size>{_SIZE_TOKEN})(?![\w.])(?P<after>\s*(?:waist|w\b|in\s+(?:shoes|sneakers)|us\b|shoe)?)",
    re.IGNORECASE,
)


def stated_own_size(text: str) -> str | None:
    """The size the customer says they wear ("I'm usually a medium" -> "M", "I wear a 10"
    -> "10"), not a size they ask about or read on a tag ("the tag says S")."""
    plain = text.replace("’", "'")
    for found in _OWN_SIZE.finditer(plain):
        raw = found.group("size")
        if raw[0].isdigit():
            # "I'm 25" is an age: a number needs a frame that makes it a size.
            framed = re.search(
                r"wear|take|fit|buy|size|usually|normally|typically",
                found.group("cue") + " " + found.group("filler"),
                re.IGNORECASE,
            )
            if not framed and not found.group("after").strip():
                continue
        size = normalize_size(raw)
        if size is not None:
            return size
    return None


_CATEGORY_NAMES = frozenset(CATEGORY_WORDS.values())
_DEFINITE = re.compile(r"\b(?:the|those|these|that|this|your)\b")
_BROWSE_CUE = re.compile(r"\b(?:any|anything|what|which|show|see|got|more|other|all)\b")


def browsed_category(text: str) -> str | None:
    """ "any jackets?", "do you have shoes in size 10": a whole category, not one piece.
    Only when every content word is a category word, and the wording (plural, "any")
    asks for the range rather than naming a piece ("is the jacket still there")."""
    words = content_words(text)
    if not words or refers_back(text):
        return None
    categories = {CATEGORY_WORDS.get(word, word) for word in words}
    if len(categories) != 1 or not categories <= _CATEGORY_NAMES:
        return None
    plain = simplify(text)
    if _BROWSE_CUE.search(plain) is None:
        # "shoes in size 10" browses; "the jeans" names the jeans just talked about.
        plural = any(word.endswith("s") or word in _CATEGORY_NAMES for word in words)
        if not plural or _DEFINITE.search(plain) is not None:
            return None
    return categories.pop()


_ORDINALS = {
    "first": 0,
    "1st": 0,
    "second": 1,
    "2nd": 1,
    "third": 2,
    "3rd": 2,
    "fourth": 3,
    "4th": 3,
    "fifth": 4,
    "5th": 4,
    "sixth": 5,
    "6th": 5,
    "last": -1,
}
_ORDINAL_FILLER = frozenset(
    ["the", "one", "that", "this", "please", "pls", "plz", "i", "mean", "want", "like"]
)


def ordinal_choice(text: str) -> int | None:
    """ "the second one" -> 1, "last one pls" -> -1: a pick from the list just shown."""
    words = simplify(text).split()
    picks = [_ORDINALS[word] for word in words if word in _ORDINALS]
    rest = [word for word in words if word not in _ORDINALS and word not in _ORDINAL_FILLER]
    if len(picks) != 1 or rest:
        return None
    return picks[0]


# "let me know when you get jackets in M", "notify me about new drops", "ALERTS".
_ALERTS = re.compile(
    r"^(?:alerts?|drop alerts?|notify me|alert me|subscribe)(?: please| pls| plz)?$"
    r"|\b(?:let me know|lmk|notify me|alert me|tell me|message me|text me|dm me|ping me"
    r"|hit me up|keep me posted|keep me updated|give me a heads up)\b.*"
    r"\b(?:when|if|once|whenever|as soon as|about)\b.*"
    r"\b(?:new|more|get|gets|got|drop|drops|restock|restocks|land|lands|come|comes|arrive"
    r"|arrives|list|post|have)\b"
)
# "STOP" and the usual ways of saying it; a whole message, or an unmistakable phrase.
_STOP_WHOLE = re.compile(
    r"^(?:stop|stopall|stop all|stop it|stop alerts?|stop messages|stop messaging"
    r"|stop texting|unsubscribe|unsub|opt out|optout|cancel alerts?|no more)"
    r"(?: please| pls| plz| thanks| thank you| now)*$"
)
_STOP_PHRASE = re.compile(
    r"\b(?:unsubscribe|opt me out|stop (?:sending|messaging|texting|dming|alerting|notifying)"
    r"(?: me)?|no more (?:alerts|messages|notifications|drop alerts|texts|dms)"
    r"|(?:turn off|cancel|stop|disable|end) (?:the |my |these |all )?(?:drop )?"
    r"(?:alerts|notifications))\b"
)


def wants_alerts(text: str) -> bool:
    """The customer asks to hear about new pieces ("let me know when you get jackets in M")."""
    return _ALERTS.search(simplify(text)) is not None


def says_stop(text: str) -> bool:
    """ "STOP", "unsubscribe", "stop messaging me", "no more alerts": alerts end at once."""
    plain = simplify(text)
    return _STOP_WHOLE.match(plain) is not None or _STOP_PHRASE.search(plain) is not None


def named_category(text: str) -> str | None:
    """The one category the message names ("jackets in M" -> outerwear), if exactly one."""
    words = simplify(text).split()
    named = {CATEGORY_WORDS.get(word, word) for word in words} & _CATEGORY_NAMES
    return named.pop() if len(named) == 1 else None


_STOCK = re.compile(r"\b(?:new|drop|drops|restock|restocks|pieces|stuff|items|arrivals)\b")
_ORDER_WORDS = re.compile(
    r"\b(?:order|orders|package|parcel|shipping|shipped|ships|tracking|refund)\b"
)


def about_stock(text: str) -> bool:
    """Whether an alerts request is about the shop's stock ("jackets in M", "new drops")
    rather than the customer's own order ("let me know when you get my order out")."""
    plain = simplify(text)
    if _ORDER_WORDS.search(plain):
        return False
    return named_category(text) is not None or _STOCK.search(plain) is not None
