"""Vocabulary and template grammar of the embedded corpus.

Sentences are 3-10 upper-case words over a fixed vocabulary of about 500
words (A-Z, apostrophe, space only). Every sentence is a pure function of
``(split, index, attempt)`` through ``random.Random`` seeded with a string, so
utterance k never depends on any other utterance.

* Train and held-out sentences are disjoint by construction: a sentence's
 SHA-256 bucket decides which split may use it (0 → dev, 1 → unseen,
 2-9 → train).
* Sentence shapes: train and dev use ``TEMPLATES``; ``unseen`` uses only
 ``UNSEEN_TEMPLATES``, shapes training never shows (fronted phrases, yes/no
 questions, relative clauses, ...) made of the same slots and words, so the
 unseen split measures whether a model learnt words rather than templates.
* Train vocabulary covers every word: train sentence ``i < len(vocabulary())``
 is forced to contain ``vocabulary()[i]`` (for every attempt), so every dev or
 unseen word occurs in a full training set.
* v3: half of the other training sentences (``FREE_SHARE``, decided per index)
 are free word sequences, 3-10 words drawn uniformly from the vocabulary, so
 that no sentence shape predicts the next word. A model trained on the
 templates alone learnt them as a language model: sentence shapes it never saw
 were the largest part of its unseen error (docs/TINY.md). Dev and unseen
 sentences are those of v2.
"""
from __future__ import annotations

import functools
import hashlib
import random
import re

SEED = "ds2bench-corpus-v2"
MIN_WORDS, MAX_WORDS = 3, 10
OPTIONAL_SKIP = 0.65   # probability that an optional slot is left out
FREE_SHARE = 0.5       # v3: share of (unforced) training sentences that are free word sequences
ALLOWED = re.compile(r"^[A-Z']+( [A-Z']+)*$")
SPLIT_BUCKETS = {"dev": (0,), "unseen": (1,), "train": tuple(range(2, 10))}

_ADJ = ("BIG SMALL NEW YOUNG HAPPY SAD QUIET LOUD BRIGHT DARK WARM COLD HEAVY LIGHT SOFT HARD "
        "FAST SLOW TALL SHORT LONG CLEAN DIRTY FULL FRESH STRANGE SIMPLE BUSY LAZY BRAVE CALM "
        "PROUD GENTLE WILD TINY HUGE RICH POOR SWEET LATE RED BLUE GREEN YELLOW BLACK WHITE "
        "BROWN SILVER PURPLE FUNNY KIND OLD EMPTY ORANGE ANGRY EASY OPEN UGLY EAGER ICY").split()
_NOUN = ("DOG CAT BIRD HORSE COW FISH MOUSE CHILD MAN WOMAN TEACHER DOCTOR FARMER DRIVER "
         "STUDENT KING FRIEND NEIGHBOR BOY GIRL BABY HOUSE GARDEN KITCHEN WINDOW DOOR TABLE "
         "CHAIR BED LAMP CLOCK BOOK LETTER PAPER PICTURE BOX BAG BOTTLE CUP GLASS KNIFE APPLE "
         "EGG CAKE CAR BUS TRAIN BOAT SHIP BICYCLE ROAD BRIDGE RIVER LAKE HILL MOUNTAIN FOREST "
         "TREE FLOWER FIELD FARM VILLAGE CITY STREET MARKET SHOP SCHOOL STATION HOSPITAL OFFICE "
         "PARK BEACH KEY RING COAT HAT SHIRT UMBRELLA BLANKET BALL SONG STORY GAME DREAM "
         "QUESTION TICKET PHONE COMPUTER MAP GIFT ROPE MACHINE WALL ROOF STONE STAR CLOUD").split()
_IRREGULAR_PLURAL = {"FISH": "FISH", "MOUSE": "MICE", "CHILD": "CHILDREN", "MAN": "MEN",
                     "WOMAN": "WOMEN", "KNIFE": "KNIVES"}
_VT = ("SAW FOUND PAINTED CARRIED BOUGHT SOLD WASHED CLEANED OPENED CLOSED MOVED PUSHED PULLED "
       "DROPPED LIFTED KICKED WATCHED FOLLOWED VISITED FIXED BROKE BUILT COOKED ATE DREW WROTE "
       "BROUGHT TOOK LOST HID CHASED CAUGHT HELD LOVED LIKED WANTED NEEDED").split()
_VI = ("SLEPT LAUGHED SMILED CRIED WAITED WALKED RAN JUMPED SANG DANCED SHOUTED FELL SAT STOOD "
       "ARRIVED WORKED PLAYED SWAM RESTED HURRIED STAYED RETURNED DISAPPEARED").split()
_VB = ("SEE FIND PAINT CARRY BUY SELL WASH CLEAN OPEN CLOSE MOVE PUSH PULL DROP LIFT KICK WATCH "
       "FOLLOW VISIT FIX BREAK BUILD COOK EAT DRAW WRITE READ BRING TAKE LOSE HIDE CHASE CATCH "
       "HOLD LOVE LIKE WANT NEED").split()
_VBI = "SLEEP LAUGH SMILE WAIT WALK RUN JUMP SING DANCE STAY REST PLAY WORK SWIM".split()
_ADV = ("QUICKLY SLOWLY QUIETLY LOUDLY CAREFULLY HAPPILY SUDDENLY FINALLY TODAY YESTERDAY AGAIN "
        "SOON LATER TOGETHER OUTSIDE ALWAYS NEVER OFTEN TONIGHT").split()
_PREP = "IN ON UNDER NEAR BEHIND BESIDE ACROSS OVER THROUGH INTO FROM WITH AT BY AROUND".split()
_NAME = ("JOHN MARY PETER ANNA DAVID SARAH JAMES EMMA MICHAEL LUCY THOMAS ALICE ROBERT SOPHIE "
         "DANIEL GRACE HENRY KATE").split()
_DAYS = "MONDAY TUESDAY WEDNESDAY THURSDAY FRIDAY SATURDAY SUNDAY".split()
_TIME = (["LAST NIGHT", "THIS MORNING", "IN THE EVENING", "NEXT WEEK", "LAST YEAR", "AT NOON",
          "EVERY DAY", "AFTER LUNCH", "BEFORE DINNER", "THIS AFTERNOON", "NEXT MONTH"]
         + [f"ON {d}" for d in _DAYS])
_NUM = ("TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE TEN TWELVE TWENTY MANY SEVERAL SOME FEW "
        "THESE THOSE").split()


def plural(noun: str) -> str:
    """English plural of a vocabulary noun."""
    if noun in _IRREGULAR_PLURAL:
        return _IRREGULAR_PLURAL[noun]
    if noun.endswith(("S", "X", "CH", "SH")):
        return noun + "ES"
    if noun.endswith("Y") and noun[-2] not in "AEIOU":
        return noun[:-1] + "IES"
    return noun + "S"


@functools.cache
def categories() -> dict[str, tuple[str, ...]]:
    """Slot name → entries (an entry may hold several words)."""
    return {
        "ADJ": tuple(_ADJ),
        "ADJC": tuple(a for a in _ADJ if a[0] not in "AEIOU"),
        "ADJV": tuple(a for a in _ADJ if a[0] in "AEIOU"),
        "N": tuple(_NOUN),
        "NPL": tuple(plural(n) for n in _NOUN),
        "VT": tuple(_VT), "VI": tuple(_VI), "VB": tuple(_VB), "VBI": tuple(_VBI),
        "ADV": tuple(_ADV), "PREP": tuple(_PREP), "TIME": tuple(_TIME),
        "NAME": tuple(_NAME), "NAMEPOS": tuple(n + "'S" for n in _NAME),
        "DET": tuple("THE THIS THAT EVERY EACH ONE MY YOUR HIS HER OUR THEIR NO".split()),
        "DETPL": tuple("THE MY YOUR OUR THEIR".split()) + tuple(_NUM),
        "NUM": tuple(_NUM),
        "SUBJ": tuple("I YOU HE SHE WE THEY".split()),
        "OBJ": tuple("ME YOU HIM HER US THEM IT".split()),
        "NEG": tuple("DIDN'T CAN'T WON'T COULDN'T SHOULDN'T".split()),
        "BE": ("IS", "WAS", "ISN'T", "WASN'T"),
        "BEPL": ("ARE", "WERE", "AREN'T", "WEREN'T"),
        "ITS": ("IT'S", "THAT'S", "HERE'S", "THERE'S"),
        "GOING": ("I'M", "WE'RE", "THEY'RE", "YOU'RE", "HE'S", "SHE'S"),
        "WH": ("WHERE", "WHY", "WHEN", "HOW"),
    }


# "<SLOT>" is a slot, "<SLOT>?" an optional one, anything else a literal word.
TEMPLATES: tuple[str, ...] = (
    "<DET> <ADJ>? <N> <VT> <DET> <ADJ>? <N> <ADV>?",
    "<NAME> <VI> <PREP> <DET> <N> <TIME>?",
    "<NAMEPOS> <N> <BE> <ADJ>",
    "<SUBJ> <NEG> <VB> <DET> <ADJ>? <N>",
    "<NUM> <ADJ>? <NPL> <VI> <PREP> <DET> <N> <TIME>?",
    "THERE WAS A <ADJC> <N> <PREP> <DET> <N>",
    "THERE WAS AN <ADJV> <N> <PREP> THE <N>",
    "<SUBJ> <VT> <DET> <N> AND <DET> <N>",
    "<ITS> <DET> <ADJ> <N>",
    "<DET> <ADJ>? <N> <VI> <ADV>",
    "<WH> DID <NAME> <VB> <DET> <N>",
    "<SUBJ> WILL <VB> <DET> <ADJ>? <N> <TIME>?",
    "<GOING> GOING TO <VB> <DET> <N>",
    "<NAME> AND <NAME> <VT> <DETPL> <ADJ>? <NPL>",
    "PLEASE <VB> THE <N> <PREP> THE <N>",
    "<DET> <N> <BE> <ADJ> AND <ADJ>",
    "LET'S <VBI> <PREP> THE <N> <TIME>?",
    "<NAME> <VT> <OBJ> <TIME>",
    "<DETPL> <ADJ>? <NPL> <BEPL> <ADJ> <TIME>?",
    "<NAME> DOESN'T <VB> <DETPL> <NPL>",
    "<NAME> <VT> <NAMEPOS> <ADJ>? <N>",
    "<SUBJ> <VI> <ADV> <TIME>?",
    "DON'T <VB> MY <ADJ>? <N> <ADV>?",
    "WHO <VT> THE <ADJ>? <N> <PREP> THE <N>",
    # v2: more shapes (time and adverbs first, coordination, longer objects).
    "<TIME> <NAME> <VT> <DET> <ADJ>? <N>",
    "<ADV> THE <ADJ>? <N> <VI>",
    "<NAME> <VT> THE <N> <PREP> THE <ADJ>? <N>",
    "<SUBJ> <VT> <OBJ> <ADV> <TIME>?",
    "<DET> <ADJ> <N> AND <DET> <ADJ> <N> <VI>",
    "<WH> <BEPL> THE <ADJ>? <NPL> <PREP> THE <N>",
    "<NAME> WILL <VBI> <PREP> THE <N> <TIME>?",
    "<NUM> <NPL> AND <NUM> <NPL> <VI>",
)

# Shapes only the unseen split uses: same slots and literal words as above.
UNSEEN_TEMPLATES: tuple[str, ...] = (
    "<PREP> THE <N> <NAME> <VT> <DET> <ADJ>? <N>",
    "DID <SUBJ> <VB> THE <ADJ>? <N> <TIME>?",
    "THE <N> <NAME> <VT> <BE> <ADJ>",
    "WILL <NAME> <VB> <OBJ> <TIME>?",
    "<NAME> <VT> THE <N> AND <VI> <ADV>?",
    "<ADJ> <NPL> <VI> <PREP> <NAMEPOS> <N>",
    "WHO WILL <VB> THE <NPL> <ADV>?",
    "<OBJ> AND <NAME> <VI> <TIME>",
    "<TIME> THE <NPL> <BEPL> <ADJ> AND <ADJ>",
    "<WH> DID THE <ADJ>? <N> <VBI> <ADV>?",
)


def _parse(template: str) -> tuple[tuple[str, str, bool], ...]:
    """Template → ((kind 'slot'|'word', value, optional), ...)."""
    out = []
    for tok in template.split():
        if tok.startswith("<"):
            out.append(("slot", tok.strip("<>?"), tok.endswith("?")))
        else:
            out.append(("word", tok, False))
    return tuple(out)


@functools.cache
def _templates(unseen: bool = False) -> tuple[tuple[tuple[str, str, bool], ...], ...]:
    return tuple(_parse(t) for t in (UNSEEN_TEMPLATES if unseen else TEMPLATES))


@functools.cache
def vocabulary(unseen: bool = False) -> tuple[str, ...]:
    """Every word the (training, or with ``unseen`` the held-out) grammar can produce, sorted."""
    cats = categories()
    words: set[str] = set()
    for tpl in _templates(unseen):
        for kind, value, _ in tpl:
            for entry in (cats[value] if kind == "slot" else (value,)):
                words.update(entry.split())
    return tuple(sorted(words))


def bucket(sentence: str) -> int:
    """Hash bucket 0-9 of a sentence; decides which split may use it."""
    return int(hashlib.sha256(sentence.encode()).hexdigest()[:8], 16) % 10


@functools.cache
def _candidates(forced: str | None) -> tuple[tuple[tuple, int], ...]:
    """(template, position of the slot that must hold ``forced`` or -1)."""
    cats = categories()
    out = []
    for tpl in _templates():
        if forced is None:
            out.append((tpl, -1))
            continue
        for pos, (kind, value, _) in enumerate(tpl):
            if kind == "word" and value == forced:
                out.append((tpl, -1))
            elif kind == "slot" and any(forced in e.split() for e in cats[value]):
                out.append((tpl, pos))
    return tuple(out)


def _generate(rng: random.Random, forced: str | None, unseen: bool = False) -> str:
    cats = categories()
    if unseen:
        tpl, force_pos = rng.choice(_templates(True)), -1
    else:
        tpl, force_pos = rng.choice(_candidates(forced))
    words: list[str] = []
    for pos, (kind, value, optional) in enumerate(tpl):
        if kind == "word":
            words.append(value)
        elif pos == force_pos:
            words.extend(rng.choice([e for e in cats[value] if forced in e.split()]).split())
        elif not optional or rng.random() >= OPTIONAL_SKIP:
            words.extend(rng.choice(cats[value]).split())
    return " ".join(words)


def forced_word(split: str, index: int) -> str | None:
    """The word train sentence ``index`` must contain (vocabulary coverage)."""
    vocab = vocabulary()
    return vocab[index] if split == "train" and index < len(vocab) else None


def is_free(index: int) -> bool:
    """Whether training sentence ``index`` (if not forced) is a free word sequence.

    Drawn from its own stream (not the text's), per index: every retry of that
    utterance stays free or templated.
    """
    return random.Random(f"{SEED}/shape/{index}").random() < FREE_SHARE


def sentence(split: str, index: int, attempt: int = 0) -> str:
    """The transcript of utterance ``index`` of ``split`` at retry ``attempt``."""
    if split not in SPLIT_BUCKETS:
        raise ValueError(f"unknown split {split!r}")
    rng = random.Random(f"{SEED}/text/{split}/{index}/{attempt}")
    forced = forced_word(split, index)
    free = split == "train" and forced is None and is_free(index)
    for _ in range(10_000):
        if free:
            text = " ".join(rng.choice(vocabulary()) for _ in range(rng.randint(MIN_WORDS, MAX_WORDS)))
        else:
            text = _generate(rng, forced, unseen=split == "unseen")
        if MIN_WORDS <= len(text.split()) <= MAX_WORDS and bucket(text) in SPLIT_BUCKETS[split]:
            return text
    raise RuntimeError(f"no sentence found for {split}/{index}/{attempt}")  # pragma: no cover


def check_text(text: str) -> None:
    """Raise ValueError unless ``text`` satisfies the corpus text constraints."""
    if not ALLOWED.match(text):
        raise ValueError(f"characters outside A-Z, apostrophe, space: {text!r}")
    if not MIN_WORDS <= len(text.split()) <= MAX_WORDS:
        raise ValueError(f"sentence length outside {MIN_WORDS}-{MAX_WORDS} words: {text!r}")
