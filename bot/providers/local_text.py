"""The embedded story writer: templates filled from the prompt, with no key and no network.

Everything is chosen by a ``random.Random`` seeded from a sha256 of the request, so the same
prompt, style and scene count always give the same story (Python's ``hash()`` is salted per
process, so it is never used here).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import random
import re
import unicodedata

from bot.providers.base import StoryDraft, StoryRequest

log = logging.getLogger(__name__)

PREMISE_MAX_CHARS = 160
MOTIF_MAX_CHARS = 24
FALLBACK_PREMISE = "a quiet adventure nobody expected"

HEROES = ["Mira", "Tobin", "Ada", "Kestrel", "Juniper", "Orrin", "Lumi", "Basil", "Wren", "Nico", "Isla", "Pip"]
LOOKS = [
    "a red scarf and a patched satchel",
    "a yellow raincoat and muddy boots",
    "a wide-brimmed straw hat and a lantern",
    "a green cloak pinned with a silver leaf",
    "round glasses and a blue knitted sweater",
    "a travel-worn coat covered in little badges",
]
PALETTES = [
    "warm ochre, teal and cream",
    "dusky violet, coral and gold",
    "sage green, sky blue and soft white",
    "deep navy, amber and rose",
    "terracotta, olive and sand",
]
ART_STYLES = [
    "soft watercolour storybook illustration",
    "bold flat-colour picture-book art",
    "gentle gouache painting with visible brush strokes",
    "clean vector illustration with long shadows",
]
COMPANIONS = ["a talkative crow", "a small clockwork fox", "an old lighthouse keeper", "a shy river otter"]
PLACES = ["the edge of town", "a windy hilltop", "a forgotten library", "a harbour at dawn", "a mossy forest path"]
STOPWORDS = frozenset(
    "about after again also and are because been before being but can could does doing down each even "  # noqa: SIM905
    "from have having here into just like more most must once only other over same should some such "
    "than that their them then there these they this those through under until very what when where "
    "which while with would your story tale make write tell give create please".split()
)

DETERMINERS = frozenset({"a", "an", "the", "my", "his", "her", "their", "our", "your", "some", "one", "this"})
PHRASE_BREAKERS = (
    STOPWORDS
    | DETERMINERS
    | frozenset({"who", "that", "which", "and", "or", "to", "of", "in", "on", "at", "by", "for", "is", "was", "but"})
)
# Bidirectional overrides and isolates could flip the rest of a Discord message; they carry no meaning here.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
LEADING_ARTICLES = frozenset({"a", "an", "the", "my", "our", "some", "one"})
REQUEST_PREAMBLE = re.compile(
    r"^(please\s+)?((write|tell|make|create|give)\s+(me\s+|us\s+)?)?(a|an)\s+(short\s+|little\s+)?"
    r"(story|tale)\s+(about|of|where|in which)\s+",
    re.IGNORECASE,
)

# Each phase has several templates so longer stories do not repeat themselves.
SETUP = [
    "{hero}, who always wears {look}, lived near {place}. One morning it all began: {premise}. "
    "{Hero} packed a bag and set off before anyone could object.",
    "Nobody at {place} believed {hero} at first. But the news was true: {premise}. "
    "So {hero}, in {look}, decided to see it with their own eyes.",
]
RISING = [
    "On the road {hero} met {companion}, who knew a thing or two about the {motif}. "
    "Together they followed the clues further than {hero} had ever gone.",
    "The path grew strange, and the {motif} seemed to be everywhere at once. "
    "{Hero} kept going, scribbling notes and humming to stay brave.",
    "A storm rolled in and scattered their map. {Hero} and {companion} sheltered under a crooked bridge "
    "and worked out where the {motif} must lead.",
    "At a crowded market someone whispered about the {motif}. "
    "{Hero} traded a button and a riddle for directions, and the trail grew warm.",
    "They crossed a field of tall grass that sang in the wind. "
    "Each step brought the {motif} closer, and {hero} felt the day tighten like a drawn bow.",
    "A locked gate stood in their way. {Hero} remembered something small from home, "
    "and with it the lock clicked open onto the {motif}.",
    "Night fell and the stars came out over the hills. {Companion} told an old tale about the {motif}, "
    "and {hero} realised the tale was about them.",
    "A rival traveller tried to reach the {motif} first. "
    "{Hero} chose kindness over speed, and that choice opened a shortcut.",
]
CLIMAX = [
    "At last {hero} stood face to face with the heart of it all: {premise}. "
    "Everything wobbled on the edge of going wrong. {Hero} took a breath and acted.",
    "The moment arrived all at once, loud and bright and bigger than expected. "
    "{Hero} held on to the {motif} and did the one brave thing left to do.",
]
RESOLUTION = [
    "When the dust settled, {place} looked the same but felt completely different. "
    "{Hero} walked home with {companion}, already telling the story of the {motif}.",
    "Back home, {hero} hung {look_short} by the door and smiled. "
    "The {motif} had changed things, and tomorrow would be a new page.",
]
WHOLE = [
    "{Hero}, in {look}, discovered something wonderful near {place}: {premise}. "
    "After one wild, brave afternoon, everything turned out better than before.",
]


def _seeded_random(request: StoryRequest) -> random.Random:
    material = "\x1f".join([request.prompt, request.style or "", str(request.scene_count)])
    digest = hashlib.sha256(material.encode("utf-8", "surrogatepass")).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def clean_prompt(text: str) -> str:
    """Drop control characters and collapse whitespace; keep emoji and every script."""
    kept = "".join(" " if ch in BIDI_CONTROLS or unicodedata.category(ch) in ("Cc", "Cs", "Co") else ch for ch in text)
    return re.sub(r"\s+", " ", kept).strip()


def shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0] if " " in text[:limit] else text[:limit]
    return cut.rstrip(" ,;:.-")


def as_premise(prompt: str) -> str:
    """The prompt as a clause that fits mid-sentence: no "write a story about", no final full stop."""
    premise = REQUEST_PREAMBLE.sub("", prompt).rstrip(" .!?;:,") or prompt.rstrip(" .!?;:,")
    if not premise:
        return FALLBACK_PREMISE
    first, _, rest = premise.partition(" ")
    if first.lower() in LEADING_ARTICLES:
        premise = f"{first.lower()} {rest}".rstrip()
    return shorten(premise, PREMISE_MAX_CHARS)


def motifs_from(prompt: str) -> list[str]:
    """Nouns from the prompt, in order, for the later scenes to come back to.

    A crude noun finder: the last word of each short run after a determiner ("a lighthouse cat
    who..." gives "cat"), then other long words that do not look like verbs or adverbs.
    """
    words = re.findall(r"[^\W\d_][\w'-]*", prompt.lower())
    heads: list[str] = []
    for index, word in enumerate(words):
        if word not in DETERMINERS:
            continue
        run = list(itertools.takewhile(lambda w: w not in PHRASE_BREAKERS, words[index + 1 : index + 4]))
        if run and len(run[-1]) >= 3:
            heads.append(run[-1])
    others = [w for w in words if len(w) >= 4 and not w.endswith(("ing", "ed", "ly"))]
    candidates = heads if len(set(heads)) >= 2 else heads + others
    motifs: list[str] = []
    for word in candidates:
        if word not in motifs and word not in STOPWORDS and len(word) <= MOTIF_MAX_CHARS:
            motifs.append(word)
    return motifs[:6]


SMALL_WORDS = frozenset({"a", "an", "the", "and", "but", "or", "of", "in", "on", "at", "to", "for", "with", "by"})
TITLE_MAX_WORDS = 9


def title_from(premise: str) -> str:
    """The premise in title case ("a fox who learns to fly" -> "A Fox Who Learns to Fly"), kept short."""
    words = premise.split()[:TITLE_MAX_WORDS]
    titled = [
        word if (i and word.lower() in SMALL_WORDS) or not word.islower() else word[:1].upper() + word[1:]
        for i, word in enumerate(words)
    ]
    return " ".join(titled) + ("…" if len(premise.split()) > TITLE_MAX_WORDS else "")


def arc_phases(scene_count: int) -> list[str]:
    """setup, rising..., climax, resolution, scaled to the number of scenes."""
    if scene_count == 1:
        return ["whole"]
    if scene_count == 2:
        return ["setup", "resolution"]
    return ["setup", *["rising"] * (scene_count - 3), "climax", "resolution"]


class LocalTextProvider:
    """A template story writer (model key ``local-template``)."""

    async def write_story(self, request: StoryRequest) -> StoryDraft:
        # Pure string work on at most a few kilobytes: fast enough to run on the loop.
        return write_story_sync(request)


def write_story_sync(request: StoryRequest) -> StoryDraft:
    rng = _seeded_random(request)
    prompt = clean_prompt(request.prompt)
    premise = as_premise(prompt)
    motifs = motifs_from(prompt) or ["adventure"]
    hero = rng.choice(HEROES)
    look = rng.choice(LOOKS)
    style = shorten(clean_prompt(request.style or ""), 80) or rng.choice(ART_STYLES)
    fields = {
        "hero": hero,
        "Hero": hero,
        "look": look,
        "look_short": look.split(" and ")[0],
        "place": rng.choice(PLACES),
        "companion": rng.choice(COMPANIONS),
        "premise": premise,
    }
    fields["Companion"] = fields["companion"][0].upper() + fields["companion"][1:]

    pools = {"setup": SETUP, "climax": CLIMAX, "resolution": RESOLUTION, "whole": WHOLE}
    rising = rng.sample(RISING, len(RISING))
    scenes: list[str] = []
    for index, phase in enumerate(arc_phases(request.scene_count)):
        template = rising.pop() if phase == "rising" else rng.choice(pools[phase])
        motif = motifs[index % len(motifs)]
        scenes.append(template.format(motif=motif, **fields))

    title = title_from(premise)
    bible = (
        f"{hero} is the hero of this story and wears {look}. "
        f"Palette: {rng.choice(PALETTES)}. Art style: {style}. "
        f"Keep {hero}'s face, outfit and colours the same in every picture."
    )
    log.debug("local story written: %d scenes, title %r", len(scenes), title)
    return StoryDraft(title=title, bible=bible, scenes=scenes)
