"""Requests about pieces as people word them to a sales assistant, composed from parts.

The grammars name a piece the way this shop's customers mostly do ("the carhartt", "PT-0142").
People who talk to a shop assistant for the first time describe it instead ("the light grey
blouse with long sleeves", "those two pairs on the left", "the one from your last video"),
wrap the request in the politeness they use with any assistant ("could you tell me...",
"will you add...") and say it with verbs no grammar here listed ("add it to my cart",
"let me get", "pull some up"). Measured with `route eval`, the classifier read such
wrappers as requests to an assistant (`other`): the assistant corpora are full of them.

So each request here is a frame (what is asked, in many verbs) around a reference to a piece
(colours, patterns, cuts, positions, "the one in the video"), sometimes after a clause that
reacts to the last piece shown. Written for this project, from no evaluation set.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

from app.services.router.models import Intent

COLOURS: tuple[str, ...] = (
    "black", "white", "grey", "gray", "light grey", "dark grey", "charcoal", "navy",
    "dark blue", "light blue", "baby blue", "royal blue", "red", "maroon", "burgundy",
    "wine red", "olive", "green", "dark green", "sage", "forest green", "brown",
    "dark brown", "tan", "camel", "beige", "cream", "off-white", "ivory", "pink",
    "hot pink", "dusty pink", "purple", "lilac", "lavender", "yellow", "mustard",
    "orange", "rust", "teal", "mint", "khaki", "silver", "gold", "multicolour",
)  # fmt: skip
PATTERNS: tuple[str, ...] = (
    "striped", "plaid", "checked", "floral", "polka dot", "spotted", "tie-dye",
    "camo", "leopard print", "paisley", "pinstriped", "houndstooth", "graphic",
    "embroidered", "plain", "washed", "distressed", "ribbed", "quilted", "sequinned",
)  # fmt: skip
CUTS: tuple[str, ...] = (
    "long-sleeved", "long sleeve", "short-sleeved", "sleeveless", "cropped", "oversized",
    "fitted", "slim", "baggy", "high-waisted", "low rise", "wide leg", "straight leg",
    "button-up", "zip-up", "hooded", "v-neck", "turtleneck", "midi", "maxi", "mini",
    "full-length", "knee-length", "vintage", "90s", "y2k", "leather", "suede", "wool",
    "cotton", "linen", "corduroy", "denim", "knit", "faux fur", "velvet", "silk",
    "cheap", "affordable", "warm", "lightweight",
)  # fmt: skip
# Nouns customers use for a piece, including ones the shop's own vocabulary lacks.
PIECES: tuple[tuple[str, str], ...] = (
    ("jacket", "jackets"), ("coat", "coats"), ("blouse", "blouses"), ("shirt", "shirts"),
    ("t-shirt", "t-shirts"), ("tee", "tees"), ("top", "tops"), ("tank top", "tank tops"),
    ("dress", "dresses"), ("skirt", "skirts"), ("sweater", "sweaters"),
    ("jumper", "jumpers"), ("hoodie", "hoodies"), ("sweatshirt", "sweatshirts"),
    ("cardigan", "cardigans"), ("blazer", "blazers"), ("vest", "vests"),
    ("pair of jeans", "jeans"), ("pair of trousers", "trousers"), ("pair of pants", "pants"),
    ("pair of slacks", "slacks"), ("pair of joggers", "joggers"), ("pair of shorts", "shorts"),
    ("pair of shoes", "shoes"), ("pair of boots", "boots"), ("pair of sneakers", "sneakers"),
    ("pair of trainers", "trainers"), ("pair of heels", "heels"), ("pair of sandals", "sandals"),
    ("bag", "bags"), ("handbag", "handbags"), ("purse", "purses"), ("scarf", "scarves"),
    ("hat", "hats"), ("beanie", "beanies"), ("belt", "belts"), ("suit", "suits"),
    ("jumpsuit", "jumpsuits"), ("overalls", "overalls"), ("windbreaker", "windbreakers"),
    ("parka", "parkas"), ("puffer", "puffers"), ("fleece", "fleeces"), ("polo", "polos"),
    ("crop top", "crop tops"), ("corset", "corsets"), ("bodysuit", "bodysuits"),
    ("tracksuit", "tracksuits"), ("kimono", "kimonos"), ("poncho", "ponchos"),
)  # fmt: skip
PLACES: tuple[str, ...] = (
    "on the left", "on the right", "in the middle", "at the back", "in the front",
    "on the rack", "on the wall", "on the top shelf", "on the bottom row",
    "hanging behind you", "on the mannequin", "next to it", "beside the mirror",
    "in your last video", "from the live", "in the second pic", "in the first photo",
    "from yesterday's post", "you showed earlier", "you just showed me", "in the video",
    "at the start of the video", "in your story", "you posted today",
)  # fmt: skip
PEOPLE: tuple[str, ...] = (
    "my daughter", "my son", "my husband", "my wife", "my boyfriend", "my girlfriend",
    "my mom", "my dad", "my sister", "my brother", "my friend", "myself", "work",
    "a wedding", "a party", "a date", "a job interview", "the winter", "a trip",
)  # fmt: skip
SIZES: tuple[str, ...] = (
    "small", "medium", "large", "xs", "xl", "size s", "size m", "size 8", "size 10",
    "a 32 waist", "an m", "a large", "extra small", "size 9", "a us 8", "uk 12",
)  # fmt: skip

# Said before the request, about the piece shown last: none of it changes what is asked.
REACTIONS: tuple[str, ...] = (
    "", "", "", "", "", "ok. ", "alright, ", "hmm, ", "oh nice. ", "that's cute! ",
    "i love it. ", "not sure about that one. ", "actually, ", "also, ", "and ", "so ",
    "sorry, ", "wow, ", "perfect. ", "great, ", "hi, ", "hello! ", "hey there. ",
    "i'm not a fan of that one. ", "those look nice. ", "good to know. ", "thanks. ",
    "hm, i'm not sure yet. ", "that's exactly what i wanted. ",
)  # fmt: skip
ENDINGS: tuple[str, ...] = (
    "", "", "", "", "?", "!", ".", " please", " please.", " for me", " for me please",
    " today", " thanks", ", thank you", " if you can", " then", " too", " as well",
)  # fmt: skip


def _described(rng: random.Random, *, plural: bool = False) -> str:
    """A piece as someone looking at it describes it: 'light grey long-sleeved blouse'."""
    singular, many = rng.choice(PIECES)
    noun = many if plural else singular
    words: list[str] = []
    roll = rng.random()
    if roll < 0.55:
        colour = rng.choice(COLOURS)
        if rng.random() < 0.25:
            colour = f"{colour} and {rng.choice(COLOURS)}"
        words.append(colour)
    if rng.random() < 0.3:
        words.append(rng.choice(PATTERNS))
    if rng.random() < 0.4:
        words.append(rng.choice(CUTS))
    rng.shuffle(words)
    return " ".join([*words, noun])


def _reference(rng: random.Random) -> str:
    """A piece already shown: 'the grey one on the left', 'those two pairs', 'it'."""
    kind = rng.random()
    if kind < 0.35:
        text = f"the {_described(rng)}"
    elif kind < 0.55:
        text = f"the {rng.choice(COLOURS)} one"
    elif kind < 0.65:
        text = rng.choice(("that one", "this one", "the first one", "the second one",
                           "the last one", "the third one", "the other one", "both"))  # fmt: skip
    elif kind < 0.8:
        text = f"{rng.choice(('those', 'these', 'the two', 'both'))} {_described(rng, plural=True)}"
    elif kind < 0.9:
        text = rng.choice(("it", "them", "that", "those two", "those two pairs", "all three"))
    else:
        text = f"that {_described(rng)}"
    if rng.random() < 0.3 and not text.endswith(("it", "them", "that")):
        text = f"{text} {rng.choice(PLACES)}"
    return text


# Looking for a kind of piece: `availability`.
LOOKING_FOR: tuple[str, ...] = (
    "do you have any {some}",
    "do you have a {a}",
    "do you have a {a} in {size}",
    "i'm looking for a {a}",
    "i'm looking for some {some}",
    "looking for {some}",
    "i need a {a}",
    "i need a new {a}",
    "i need to get a {a} for {person}",
    "i want a {a}",
    "i want some {some}",
    "i would like some {some}",
    "i'd like to find a {a}",
    "i'm interested in {some}",
    "i'm interested in seeing some {some}",
    "i'm shopping for a {a}",
    "i'm hunting for a {a}",
    "i'm searching for a {a}",
    "i'm trying to find a {a}",
    "i am in search of a {a}",
    "i'm in the market for a {a}",
    "on the lookout for {some}",
    "i'm after a {a}",
    "can you show me some {some}",
    "show me {some}",
    "could you show me your {some}",
    "please pull up some {some}",
    "pull up a few {some}, would you",
    "can you find me a {a}",
    "help me find a {a}",
    "could you help me find some {some}",
    "can you recommend a {a}",
    "what {some} would you recommend",
    "any {some} you'd recommend",
    "suggest a {a} for {person}",
    "which {a} would go with my {other}",
    "what {some} would match my style",
    "anything that would go with {colour} {pieces}",
    "got any {some}",
    "any {some} in stock",
    "what {some} do you have",
    "what do you have in {some}",
    "are there any {some} left",
    "do you carry {some}",
    "do you sell {some}",
    "is {ref} still available",
    "is {ref} still for sale",
    "do you still have {ref}",
    "can i see more pics of {ref}",
)
# Taking a piece shown: `hold`.
TAKING: tuple[str, ...] = (
    "add {ref} to my cart",
    "please add {ref} to my cart",
    "can you add {ref} to my cart",
    "could you add {ref} to my bag",
    "will you add {ref} to my basket",
    "put {ref} in my cart",
    "throw {ref} in my cart",
    "go ahead and add {ref} to the cart",
    "i'll take {ref}",
    "i'll get {ref}",
    "i'll go with {ref}",
    "i'll do {ref}",
    "i'll buy {ref}",
    "let me get {ref}",
    "let me have {ref}",
    "give me {ref}",
    "can i get {ref}",
    "can i buy {ref}",
    "i'd like to buy {ref}",
    "i'd like to purchase {ref}",
    "i want to buy {ref}",
    "i want {ref}",
    "i'd like {ref}",
    "i'm getting {ref}",
    "i'll have {ref}",
    "ring me up for {ref}",
    "sold, i want {ref}",
    "i need {ref}, how do i pay",
    "how do i order {ref}",
    "how can i purchase {ref}",
    "save {ref} for me",
    "can you keep {ref} for me",
)
# A piece's price: `price`.
ASKING_PRICE: tuple[str, ...] = (
    "how much is {ref}",
    "how much are {ref}",
    "how much for {ref}",
    "how much does {ref} cost",
    "what's the price of {ref}",
    "what is the price on {ref}",
    "what's the price for {ref}",
    "can you tell me the price of {ref}",
    "could you tell me how much {ref} costs",
    "do you have the price of {ref}",
    "i'd like to know the price of {ref}",
    "i want to know the price of {ref}",
    "what does {ref} cost",
    "what do {ref} cost",
    "what are you asking for {ref}",
    "what would {ref} run me",
    "price of {ref}",
    "price on {ref}",
    "is {ref} expensive",
    "is {ref} pricey",
    "how expensive is {ref}",
    "how pricey are {ref}",
    "i need to hear the price of {ref} first",
    "i should ask the price of {ref} before i decide",
    "what's the cost of {ref}",
    "can i get a price on {ref}",
    "let me know the price of {ref}",
)
# A piece's size and fit: `sizing`.
ASKING_FIT: tuple[str, ...] = (
    "what size is {ref}",
    "what size are {ref}",
    "what sizes are {ref}",
    "what are the sizes of {ref}",
    "can you tell me the size of {ref}",
    "what sizes does {ref} come in",
    "what are the available sizes for {ref}",
    "which sizes do you have {ref} in",
    "would {ref} fit {size}",
    "will {ref} fit me, i'm usually {size}",
    "how does {ref} fit",
    "does {ref} run small",
    "does {ref} run big",
    "is {ref} true to size",
    "what are the measurements of {ref}",
    "can i get the measurements for {ref}",
    "how long is {ref}",
    "what's the waist on {ref}",
    "how wide is {ref} across the chest",
    "is {ref} a women's or men's size",
)


# The same frames about things no clothes shop sells are off-topic: what is asked about
# decides, not "how much" or "i'm looking for" alone.
NOT_FOR_SALE_HERE: tuple[str, ...] = (
    "a new car", "gun ammunition", "a plane ticket to paris", "bitcoin", "gas", "an iphone",
    "rent in boston", "a tesla", "a house in texas", "a gym membership", "netflix",
    "a dozen eggs", "concert tickets", "a puppy", "car insurance", "a root canal",
    "a new laptop", "a hotel room in vegas", "an uber to the airport", "college tuition",
    "a pizza", "a divorce lawyer", "solar panels", "a used motorcycle", "the ps5",
    "a space suit", "a mortgage", "a passport", "a wedding venue", "stamps",
)  # fmt: skip


# Asking for one of those, in the shop's frames: `other`.
OFF_TOPIC: tuple[str, ...] = (
    "how much does {thing} cost",
    "how much is {thing}",
    "what's the price of {thing}",
    "can you tell me the price of {thing}",
    "what would {thing} run me",
    "how expensive is {thing}",
    "i'm looking for {thing}",
    "i need {thing}",
    "can you find me {thing}",
    "can you recommend {thing}",
    "help me find {thing}",
    "what size {thing} do i need",
    "i want to buy {thing}",
    "add {thing} to my shopping list",
)


TEMPLATES: dict[Intent, tuple[str, ...]] = {
    Intent.AVAILABILITY: LOOKING_FOR,
    Intent.HOLD: TAKING,
    Intent.PRICE: ASKING_PRICE,
    Intent.SIZING: ASKING_FIT,
    Intent.OTHER: OFF_TOPIC,
}
# What each {slot} of a template is filled with; each slot is drawn anew.
SLOTS: dict[str, Callable[[random.Random], str]] = {
    "a": _described,
    "other": _described,
    "some": lambda rng: _described(rng, plural=True),
    "ref": _reference,
    "size": lambda rng: rng.choice(SIZES),
    "person": lambda rng: rng.choice(PEOPLE),
    "colour": lambda rng: rng.choice(COLOURS),
    "pieces": lambda rng: rng.choice(PIECES)[1],
    "thing": lambda rng: rng.choice(NOT_FOR_SALE_HERE),
}
_SLOT = re.compile(r"\{(\w+)\}")


def _fill(template: str, rng: random.Random) -> str:
    return _SLOT.sub(lambda match: SLOTS[match.group(1)](rng), template)


PER_INTENT = 260


def shopping_requests(rng: random.Random, per_intent: int = PER_INTENT) -> list[tuple[str, Intent]]:
    """`per_intent` composed requests for each intent of TEMPLATES."""
    out: list[tuple[str, Intent]] = []
    for intent, templates in TEMPLATES.items():
        for _ in range(per_intent):
            request = _fill(rng.choice(templates), rng)
            text = f"{rng.choice(REACTIONS)}{request}{rng.choice(ENDINGS)}"
            out.append((_sentence_case(text, rng), intent))
    return out


def _sentence_case(text: str, rng: random.Random) -> str:
    return text[:1].upper() + text[1:] if rng.random() < 0.5 else text
