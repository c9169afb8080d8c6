"""Canonical forms of the shop's identifiers and sizes, shared by import and router."""

from __future__ import annotations

import re
from itertools import pairwise

SKU_PATTERN = re.compile(r"PT-\d{4}")
ORDER_NUMBER_PATTERN = re.compile(r"PH-\d{5}")
LETTER_SIZES: tuple[str, ...] = ("XS", "S", "M", "L", "XL", "XXL")

_LETTER_SIZE_WORDS: dict[str, str] = {
    "xs": "XS",
    "xsmall": "XS",
    "extrasmall": "XS",
    "s": "S",
    "sm": "S",
    "small": "S",
    "m": "M",
    "med": "M",
    "medium": "M",
    "l": "L",
    "lg": "L",
    "large": "L",
    "xl": "XL",
    "xlarge": "XL",
    "extralarge": "XL",
    "xxl": "XXL",
    "2xl": "XXL",
    "xxlarge": "XXL",
}


def normalize_sku(number: str | int) -> str:
    return f"PT-{int(number):04d}"


def normalize_order_number(number: str | int) -> str:
    return f"PH-{int(number):05d}"


def normalize_size(raw: str) -> str | None:
    """`medium` -> `M`, `x-large` -> `XL`, `32` -> `32`; None when it is not a size."""
    stripped = raw.strip()
    # Half sizes ("10.5") must be checked before the dots are squeezed out below.
    if re.fullmatch(r"\d{1,2}\.5", stripped):
        return stripped
    compact = re.sub(r"[\s\-_.]", "", stripped.lower())
    if compact in _LETTER_SIZE_WORDS:
        return _LETTER_SIZE_WORDS[compact]
    if re.fullmatch(r"\d{1,2}(\.5)?", compact):
        return compact
    return None


# --- Free text: finding identifiers and sizes in what customers write -------------------
#
# Shared by the router (and anything else that reads DMs). Each finder returns the
# canonical form of the first mention, or None. They are deliberately conservative: a
# wrong order number or size is worse than none, because the conversation layer can
# always ask for a missing one.

_ORDER_FORMS: tuple[re.Pattern[str], ...] = (
    # PH-10234, ph10234, PH 10234, ph#10234: the prefix makes any 1-5 digits an order.
    re.compile(r"(?<![a-z0-9])ph[\s\-_#:.]*(\d{1,5})(?![\d.,]?\d)", re.IGNORECASE),
    # "order 10234", "order #10561", "order number: 10234", "ordered 10234": five digits
    # within a few words after "order".
    re.compile(r"\border(?:s|ed)?\b[^\d\n]{0,20}?#?\s*(\d{5})(?!\d)", re.IGNORECASE),
    # A bare "#10234": five digits after a hash are an order (SKUs have four).
    re.compile(r"(?<![\w#])#\s?(\d{5})(?!\d)"),
)

_SKU_FORMS: tuple[re.Pattern[str], ...] = (
    re.compile(r"(?<![a-z0-9])pt[\s\-_#:.]*(\d{1,4})(?![\d.,]?\d)", re.IGNORECASE),
    # "item 142", "item #23", "sku: 7", "piece no. 12"
    re.compile(
        # One digit only with a word for "number": "remove item 3" is a to-do list's.
        r"\b(?:items?|skus?|pieces?|products?|listings?)"
        r"(?:\s*(?:number|num|no\.?|nr|[#:])\s*#?\s*|\s*#?\s*(?=\d{2}))"
        r"(\d{1,4})(?![\d.,]?\d)(?!\s*(?:%|\$|dollars?|bucks|usd|days?|weeks?|hours?|pcs|more))",
        re.IGNORECASE,
    ),
    # A bare "#142": a hash and two to four digits, unless it follows "order" (the order
    # finder owns that) or is "#1" style ranking talk.
    re.compile(r"(?<!order)(?<!order )(?<![\w#])#(\d{2,4})(?!\d)", re.IGNORECASE),
)

# Identifiers and money are removed before looking for sizes, so that the digits of
# PT-0211, PH-10234 or $30 are never read as a size. Digit runs are only tried from their
# first digit ((?<![\d.,])): a pasted run of thousands of digits must stay linear.
_NOT_SIZE_SPANS = re.compile(
    r"(?<![a-z0-9])(?:pt|ph)[\s\-_#:.]*\d+|#\s?\d+|\b(?:items?|skus?)\s*#?\s*\d+"
    r"|[$£€]\s?\d+(?:[.,]\d+)?|(?<![\d.,])\d+(?:[.,]\d+)?\s?(?:[$£€%]|dollars?|bucks|usd|eur|gbp|k\b)",
    re.IGNORECASE,
)

_LETTER_TOKEN = (
    r"(?:xx[\s-]?large|xxl|2xl|x[\s-]?large|extra[\s-]?large|xl|x[\s-]?small|extra[\s-]?small"
    r"|xs|small|medium|med|large|lg|sm|s|m|l)"
)
_NUMBER_TOKEN = r"\d{1,2}(?:\.5)?"
# A number followed by one of these is a measurement, an amount or a time, not a size.
_NOT_A_SIZE_AFTER = (
    r"(?!\s*(?:'|\"|”|’|/\s*\d+\s*(?:cups?|tsp|tbsp|teaspoons?|tablespoons?|oz\b|ounces?|lbs?"
    r"|pounds?|inch|inches|in\b|miles?|km|kg|hours?|of\b)|inch|inches|in\b|cm|mm|ft|feet|foot|lbs?|kg|pounds|%|years?|yrs?|yo\b"
    r"|days?|weeks?|months?|hours?|hrs?|mins?|minutes?|am\b|pm\b|a\.?m\b|p\.?m\b|items?|pieces?"
    r"|pcs|of\b|more|dollars?|bucks|usd|us\s*(?:dollars?|\$|cents?)|cents?|\$|x\s?\d|k\b|th\b"
    r"|st\b|nd\b|rd\b|miles?|mi\b|km|kilomet|met(?:er|re)s?|blocks?|cups?|times|people|persons?"
    r"|kids|pack|percent))"
)
_END = r"(?![\w'’]|\.\w)"

_SIZE_FORMS: tuple[re.Pattern[str], ...] = (
    # "size M", "size medium", "a size 8", "sz 10.5", "size: xl", "size is L"
    # A letter needs a space or a mark after the keyword ("sizes" is not "size S"); a
    # number may follow it directly ("size10", "sz8").
    re.compile(
        rf"\b(?:size|sz|sized)(?:\s*[:=#-]\s*|\s+|(?=\d))(?:(?:is|an?|of|in)\s+)?"
        rf"(?P<size>{_LETTER_TOKEN}{_END}|{_NUMBER_TOKEN}(?![\d.]){_NOT_A_SIZE_AFTER})",
        re.IGNORECASE,
    ),
    # "medium size", "a large sized tee"
    re.compile(rf"\b(?P<size>{_LETTER_TOKEN})[\s-]+(?:size|sized)\b", re.IGNORECASE),
    # The customer's own size or the tag's: "I'm usually a medium", "I wear an M",
    # "the tag says L", "fits like a small", "do you have it in large".
    re.compile(
        r"\b(?:i'?m|i’m|im|i\s+am|usually|normally|typically|generally|always|mostly|wear|wears"
        r"|wearing|wore|tag\s+says|tag\s+said|tag\s+reads|label\s+says|labell?ed|marked"
        r"|fits?\s+like|fits?|fitting|runs?\s+like|in|it'?s|its|for|between)\s+"
        rf"(?:(?:usually|normally|typically|generally|always|mostly|like|an?)\s+){{0,2}}"
        rf"(?P<size>{_LETTER_TOKEN}){_END}"
        r"(?!\s+(?:stain|hole|mark|tear|rip|bit|amount|price|fee|discount|deal|order|box|bag"
        r"|number|one|ones|thing|things|piece|pieces|item|items|batch|question|issue|favou?r))",
        re.IGNORECASE,
    ),
    # "is it a medium", "is this an XL" (but not "is it small", which is about the fit)
    re.compile(
        rf"\bis\s+(?:it|this|that)\s+(?:an?|size)\s+(?P<size>{_LETTER_TOKEN}){_END}",
        re.IGNORECASE,
    ),
    # Numeric sizes need a clear frame: "I wear a 10", "usually a 32", "fit a 32 waist".
    re.compile(
        r"\b(?:i'?m\s+(?:usually\s+|normally\s+|typically\s+)?an?|im\s+an?|i\s+am\s+an?|wear|wears"
        r"|wearing|wore|usually|normally|typically|take\s+an?|fit\s+an?|fits\s+an?|in\s+an?"
        r"|tag\s+says)\s+(?:(?:an?|size)\s+)?"
        rf"(?P<size>{_NUMBER_TOKEN})(?![\d.]){_NOT_A_SIZE_AFTER}",
        re.IGNORECASE,
    ),
    # Waists and shoes: "W32", "waist 32", "32 waist", "32x30", "US 10", "8 women's"
    re.compile(
        r"\b(?:w|waist(?:\s+is)?|waist\s+size)\s*[:=]?\s*(?P<size>\d{2})(?!\d)", re.IGNORECASE
    ),
    re.compile(r"\b(?P<size>\d{2})\s*(?:w\b|waist|x\s?\d{2}\b)", re.IGNORECASE),
    re.compile(
        rf"\b(?:us|uk|eu|men'?s|women'?s|mens|womens)\s*(?P<size>{_NUMBER_TOKEN})(?![\d.])",
        re.IGNORECASE,
    ),
    re.compile(
        rf"\b(?P<size>{_NUMBER_TOKEN})\s*(?:us\b(?!\s*(?:dollars?|cents?|\$|\[))|men'?s|women'?s"
        r"|mens|womens|in\s+(?:shoes|sneakers))",
        re.IGNORECASE,
    ),
)
# Capitals stand on their own: "the tag says L but...", "M or L?". Lowercase multi-letter
# codes (xl, xs, xxl, 2xl) are unambiguous in any case; lowercase s/m/l alone are not.
# Never part of an abbreviation or a name's initial: U.S., P.M., L.A., S&P, M.G. road.
_NOT_IN_ABBREVIATION = (
    r"(?<![\w'’\-.&])(?P<size>{codes})"
    # "S/M", "M/L": a slash between two sizes; "S/N" is no size
    r"(?![\w'’\-&]|\.\w|/(?!(?:XXL|2XL|XL|XS|S|M|L)(?![\w'’\-])))"
)
_BARE_SIZE_CODE = re.compile(_NOT_IN_ABBREVIATION.format(codes="XXL|2XL|XL|XS|S|M|L"))
_BARE_SIZE_CODE_ANY_CASE = re.compile(
    _NOT_IN_ABBREVIATION.format(codes="xxl|2xl|xl|xs"), re.IGNORECASE
)
# A letter after these is a label, not a size: "letter M", "initials S", "vitamin D".
_LABEL_BEFORE = re.compile(
    r"\b(?:letter|letters|initials?|plan|vitamin|type|grade|class|section|row|gate|terminal"
    r"|unit|block|route|line|platform|model|series|channel|level|option|group|team|wing"
    r"|floor|apartment|apt|building|mr|mrs|ms|dr)\.?\s+$",
    re.IGNORECASE,
)
# Words a size word (small, medium, large) may stand before and still be a size: garments,
# "size", and the little words of a sentence going on ("a medium or a large", "a small
# tbh"). Before any other word it describes that thing: "a small town", "a large payment".
_GARMENT_WORDS = (
    "size sized sizes fit fits fitting tee tees t-shirt tshirt shirt shirts top tops "
    "hoodie hoodies sweater sweaters sweatshirt jacket jackets coat coats jeans pants "
    "trousers shorts skirt skirts dress dresses blouse blouses cardigan vest tank tanks "
    "crewneck polo jersey denim fleece windbreaker overalls romper jumpsuit pair pairs "
    "version ones"
)
# Pronouns, verbs and the little words that start the next part of a sentence.
_SENTENCE_WORDS = (
    "i im i'm ive i've id i'd me my you u ur your it its it's this that these those they "
    "them we he she is are was were be been am do does did will would should could can "
    "cant can't wont won't dont don't doesnt doesn't didnt didn't have has had get got "
    "and or but so then now too also though tho still just only even right maybe instead "
    "if when as at by with to from of on in for about like than either each both all any "
    "usually normally typically generally always mostly sometimes "
    "available avail rn asap please pls plz thanks thank thx ty tysm tbh ngl lol lmao "
    "haha hahaha omg ok okay k kk yes yeah yep ya no nope not"
)
_SIZE_WORD_MAY_PRECEDE = frozenset(f"{_GARMENT_WORDS} {_SENTENCE_WORDS}".split())
_SIZE_WORDS = frozenset(("small", "medium", "large", "med", "lg", "sm"))
_TOO_WEAK_FOR_A_LETTER = frozenset(("for", "its", "it's", "it’s", "between", "fit", "fits", "like"))


def parse_order_number(raw: str) -> str | None:
    """`PH-10234`, `ph10234`, `#10234`, `10234` -> `PH-10234`; None for anything else."""
    match = re.fullmatch(r"\s*(?:ph[\s\-_#:.]*(\d{1,5})|#?\s?(\d{5}))\s*", raw, re.IGNORECASE)
    if match is None:
        return None
    return normalize_order_number(match.group(1) or match.group(2))


def parse_sku(raw: str) -> str | None:
    """`PT-0142`, `pt142`, `item 142`, `#23`, `23` -> `PT-....`; None for anything else."""
    match = re.fullmatch(
        r"\s*(?:pt[\s\-_#:.]*|(?:item|sku)\s*#?\s*|#)?(\d{1,4})\s*", raw, re.IGNORECASE
    )
    return None if match is None else normalize_sku(match.group(1))


def find_order_number(text: str) -> str | None:
    found = _first_match(_ORDER_FORMS, text)
    return None if found is None else normalize_order_number(found)


def find_sku(text: str) -> str | None:
    found = _first_match(_SKU_FORMS, text)
    return None if found is None else normalize_sku(found)


def find_size(text: str) -> str | None:
    """The first size the customer states or asks about, normalised (`medium` -> `M`)."""
    cleaned = _NOT_SIZE_SPANS.sub(" ", text)
    best: tuple[int, str] | None = None
    patterns = [(form, False) for form in _SIZE_FORMS]
    patterns += [(_BARE_SIZE_CODE, True), (_BARE_SIZE_CODE_ANY_CASE, True)]
    for pattern, bare in patterns:
        for match in pattern.finditer(cleaned):
            if not _reads_as_size(cleaned, match, bare=bare):
                continue
            size = normalize_size(match.group("size"))
            if size is not None:
                if best is None or match.start("size") < best[0]:
                    best = (match.start("size"), size)
                break
    return None if best is None else best[1]


def _reads_as_size(text: str, match: re.Match[str], *, bare: bool) -> bool:
    """What a pattern cannot see: what stands before a lone letter, and what a size word
    describes."""
    token = match.group("size")
    start, end = match.span("size")
    # The words just before are all these rules read; a bounded slice keeps a message of
    # one enormous word linear.
    before = text[max(0, start - 64) : start]
    if bare and len(token) == 1:
        if _LABEL_BEFORE.search(before):
            return False
        previous = re.search(r"(\S+)\s+$", before)
        if previous is not None and _is_name(previous.group(1)):
            # "Mary S", "Michael M": an initial, unless the capital only starts a sentence.
            opening = before[: previous.start()].rstrip()
            if opening and not opening.endswith((".", "!", "?")):
                return False
    if not bare and len(token) == 1 and token.islower():
        trigger = re.search(r"([a-z'’]+)\s+(?:(?:an?|like)\s+)?$", before.lower())
        if trigger is not None and trigger.group(1) in _TOO_WEAK_FOR_A_LETTER:
            # "a ticket for m", "its s": a lone lowercase letter needs a size's own frame.
            return False
    if token.lower() in _SIZE_WORDS:
        following = re.match(r"\s+([a-z][a-z'\-]*)", text[end:].lower())
        if following is not None and following.group(1) not in _SIZE_WORD_MAY_PRECEDE:
            return False
    return True


def _is_name(word: str) -> bool:
    return len(word) > 1 and word.isalpha() and word[0].isupper() and word[1:].islower()


def mentions_size(text: str, size: str) -> bool:
    """Whether the normalised `size` can be read in `text` as a size: "medium" for M, a
    bare "32" for 32, but not "$32", "32 inches" or the digits of PT-0032."""
    cleaned = _NOT_SIZE_SPANS.sub(" ", text)
    if size[:1].isdigit():
        pattern = rf"(?<![\d.]){re.escape(size)}(?![\d.]){_NOT_A_SIZE_AFTER}"
        return re.search(pattern, cleaned, re.IGNORECASE) is not None
    words = re.findall(r"[a-z0-9]+", cleaned.lower())
    # "extra large" / "x large" are two words: also try each adjacent pair.
    pairs = [a + b for a, b in pairwise(words)]
    return any(normalize_size(word) == size for word in (*words, *pairs))


def _first_match(patterns: tuple[re.Pattern[str], ...], text: str) -> str | None:
    best: tuple[int, str] | None = None
    for pattern in patterns:
        match = pattern.search(text)
        if match is not None and (best is None or match.start() < best[0]):
            best = (match.start(), match.group(1))
    return None if best is None else best[1]
