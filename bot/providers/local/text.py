"""The embedded story writer (model ``local-template``): the prompt read into parts, woven into an arc.

The prompt is never pasted into a sentence. local_prompt reads it into a hero, a home, perhaps a
destination, a companion or antagonist and a goal; this module gives the hero a name and a look,
then tells setup, trouble, turn and resolution (more beats for longer stories) in its own grammar.
The bible names the hero's look and the palette in words the illustrator reads back (local_scene).

Every choice comes from a ``random.Random`` seeded with a sha256 of the prompt (Python's ``hash()``
is salted per process), so the same prompt always gives the same story.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
from dataclasses import dataclass

from bot.providers.base import StoryDraft, StoryRequest
from bot.providers.local.beats import ARCS, Cast, arc_phases, cap, tell
from bot.providers.local.prompt import Character, Place, StoryParts, clean_prompt, parse_prompt, strip_preamble
from bot.providers.local.vocab import (
    CONCEPTS_BY_KEY,
    LOOKS,
    NAMES,
    NO_ARTICLE,
    TRAIT_GOALS,
    Category,
    Concept,
    indefinite,
    past_tense,
    pluralize,
)
from bot.providers.local.world import LANDMARK_PLACES, MENACE, TROUBLES, WILD_WEATHER, WORLDS, World

__all__ = ["LocalTextProvider", "arc_phases", "clean_prompt", "write_story_sync"]

log = logging.getLogger(__name__)

DEFAULT_STYLE = "warm storybook illustration"
STYLE_MAX_CHARS = 60
TITLE_MAX_GOAL_WORDS = 5
FALLBACK_SETTINGS = ("meadow", "forest", "village", "coast", "mountains", "river")
# A trait for a hero the prompt gave none, half the time; the other half it stays plain.
SPARE_TRAITS = ("curious", "brave", "young", "cheerful", "clever", "small", "kind-hearted", "restless")
# Nouns that read oddly right after their own title ("Captain Holloway was a captain").
TITLE_NOUNS = {
    "captain": "sea captain",
    "king": "kind old king",
    "queen": "wise queen",
    "prince": "young prince",
    "princess": "young princess",
    "doctor": "country doctor",
    "professor": "famous professor",
}
NOUN_PREPS = {
    "harbour": "at",
    "harbor": "at",
    "port": "at",
    "dock": "at",
    "pier": "on",
    "bay": "by",
    "beach": "on",
    "shore": "on",
    "cliff": "on",
    "cliffs": "on",
    "hill": "on",
    "hills": "in",
    "hilltop": "on",
    "summit": "on",
    "peak": "on",
    "street": "on",
    "rooftops": "on",
    "ocean": "on",
    "waves": "on",
    "ice": "on",
    "iceberg": "on",
    "glacier": "on",
    "island": "on",
    "isle": "on",
    "lake": "by",
    "pond": "by",
    "river": "by",
    "stream": "by",
    "moon": "on",
    "canal": "by",
    "brook": "by",
    "creek": "by",
    "farm": "on",
    "ranch": "on",
    "field": "in",
    "mountain": "on",
}
COVERINGS = {
    "feathers": {"owl", "crow", "bird", "gull", "duck", "goose", "penguin", "parrot", "eagle", "chicken"},
    "scales": {"fish", "dragon", "snake", "dinosaur"},
    "skin": {"whale", "dolphin", "shark", "frog", "octopus", "elephant", "pig"},
    "shell": {"turtle", "snail", "crab"},
    "wings": {"butterfly", "bee"},
}


class LocalTextProvider:
    """A story writer with no key and no network (model key ``local-template``)."""

    async def write_story(self, request: StoryRequest) -> StoryDraft:
        # Pure string work on at most a kilobyte of prompt: fast enough to run on the loop.
        return write_story_sync(request)


def seeded(*parts: str) -> random.Random:
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def title_case(text: str) -> str:
    small = {"a", "an", "the", "and", "but", "or", "of", "in", "on", "at", "to", "for", "with", "by"}
    words = text.split()
    return " ".join(w if (i and w in small) or not w.islower() else cap(w) for i, w in enumerate(words))


def clean_style(style: str | None) -> str:
    """The style as a phrase that cannot break the bible's sentences."""
    words = re.sub(r"[^\w\s'-]", " ", clean_prompt(style or "")).split()
    kept: list[str] = []
    for word in words:
        if len(" ".join([*kept, word])) > STYLE_MAX_CHARS:
            break
        kept.append(word)
    return " ".join(kept) or DEFAULT_STYLE


@dataclass(frozen=True)
class Look:
    clause: str  # after the hero's noun in the bible: "with russet fur and a teal scarf"
    short: str  # "teal scarf", "yellow raincoat": what the hero wears, after "their"
    features: str  # what the bible asks to keep: "fur, scarf and colours"
    hangs: bool = False  # whether ``short`` is a thing to hang by the door at the end


HANGABLE = frozenset({"raincoat", "coat", "cloak", "jacket", "scarf", "hat", "cap", "bandana", "neckerchief"})


def choose_look(hero: Character, rng: random.Random, pronoun: str) -> Look:
    concept = hero.concept
    if concept.category is Category.PERSON:
        outfits = [o for o in LOOKS.person_outfits if pronoun == "she" or o[0] != "dress"]
        garment, accessory = rng.choice(outfits)
        main = hero.color or rng.choice(LOOKS.outfit_colors)
        accent = rng.choice([c for c in LOOKS.accent_colors if c != main])
        hair = rng.choice(LOOKS.hair_colors)
        worn = f"{accent} {accessory}" if accessory.endswith("s") else indefinite(f"{accent} {accessory}")
        return Look(
            f"in {indefinite(f'{main} {garment}')} and {worn}, with {hair} hair",
            f"{main} {garment}",
            f"face, {garment} and colours",
            garment in HANGABLE,
        )
    if concept.category is Category.ROBOT:
        main = hero.color or rng.choice(LOOKS.robot_colors)
        accent = rng.choice([c for c in LOOKS.accent_colors if c != main])
        return Look(
            f"with {main} metal plates and {indefinite(accent)} antenna light",
            f"{accent} antenna light",
            "boxy shape, plates and colours",
        )
    if concept.category is Category.THING:
        main = hero.color or (concept.colors[0] if concept.colors else rng.choice(LOOKS.thing_colors))
        accent = rng.choice([c for c in LOOKS.accent_colors if c != main])
        return Look(
            f"painted {main}, with {indefinite(accent)} ribbon", f"{accent} ribbon", "shape, ribbon and colours"
        )
    covering = next((name for name, keys in COVERINGS.items() if concept.key in keys), "fur")
    main = hero.color or rng.choice(concept.colors or ("brown",))
    accent = rng.choice([c for c in LOOKS.accent_colors if c != main])
    accessory = rng.choice(LOOKS.animal_accessories)
    return Look(
        f"with {main} {covering} and {indefinite(f'{accent} {accessory}')}",
        f"{accent} {accessory}",
        f"{covering}, {accessory} and colours",
        accessory in HANGABLE,
    )


@dataclass(frozen=True)
class Spot:
    """A place as the prose says it: "at the old lighthouse"."""

    world: World
    setting: str
    prep: str
    phrase: str  # "the old lighthouse", "deep space", "Paris"
    noun: str = ""  # the head noun, for agreement ("the high mountains were")

    @property
    def at(self) -> str:
        return f"{self.prep} {self.phrase}"

    @property
    def was(self) -> str:
        head = self.noun or self.phrase.split()[-1]
        plural = head.endswith("s") and head not in SINGULAR_S and not head[:1].isupper()
        return "were" if plural else "was"


SINGULAR_S = frozenset({"space", "oasis", "moss", "grass", "glass", "cypress", "palace", "fortress", "wilderness"})


def spot_for(place: Place | None, fallback: str, avoid: str | None = None) -> Spot:
    """``place`` as the prose says it; ``avoid`` is the hero's trait, so an old keeper's lighthouse is
    not old too."""
    spot = _spot(place, fallback)
    if avoid and spot.phrase.startswith(f"the {avoid} "):
        spot = Spot(spot.world, spot.setting, spot.prep, "the " + spot.phrase[len(f"the {avoid} ") :], spot.noun)
    return spot


def _spot(place: Place | None, fallback: str) -> Spot:
    setting = place.setting if place is not None and place.setting in WORLDS else fallback
    world = WORLDS[setting]
    if place is None:
        return Spot(world, setting, world.prep, _with_article(world.adjective, world.noun), world.noun)
    if place.proper:
        return Spot(world, setting, "in", place.proper, place.proper)
    adjective: str | None
    if place.landmark in LANDMARK_PLACES and place.noun in (None, place.landmark, *_words(place.landmark)):
        prep, adjective = LANDMARK_PLACES[place.landmark]
        noun = place.noun or CONCEPTS_BY_KEY[place.landmark].noun
    else:
        noun = place.noun or world.noun
        prep = NOUN_PREPS.get(noun, world.prep)
        adjective = world.adjective if noun == world.noun else None
    phrase = _with_article(place.adjective or adjective, noun)
    if place.within:
        phrase = f"{phrase} {place.within}"
        prep = "in" if prep == "at" and place.landmark == "castle" else prep
    return Spot(world, setting, prep, phrase, noun)


def _words(key: str | None) -> tuple[str, ...]:
    return CONCEPTS_BY_KEY[key].english if key else ()


def _with_article(adjective: str | None, noun: str) -> str:
    words = [w for w in (adjective, noun) if w]
    if adjective and adjective == noun:
        words = [noun]
    phrase = " ".join(words)
    return phrase if noun in NO_ARTICLE else f"the {phrase}"


def build_cast(parts: StoryParts, prompt_rng: random.Random) -> tuple[Cast, Look, str]:
    home_key = parts.home.setting if parts.home is not None and parts.home.setting in WORLDS else None
    hero = parts.hero
    if hero is None:
        setting = home_key or (parts.destination.setting if parts.destination else None)
        setting = setting or prompt_rng.choice(FALLBACK_SETTINGS)
        landmark = parts.home.landmark if parts.home is not None else None
        native_key, native_noun = LANDMARK_NATIVES.get(landmark or "", (WORLDS[setting].native, ""))
        native = CONCEPTS_BY_KEY[native_key]
        hero = Character(concept=native, noun=native_noun or native.noun)
    if home_key is None:
        home_key = hero.concept.habitat if hero.concept.habitat in WORLDS else prompt_rng.choice(FALLBACK_SETTINGS)
        if parts.destination is not None and home_key == parts.destination.setting:
            home_key = "village" if home_key != "village" else "meadow"
    category = hero.concept.category
    name = hero.name or _name_for(hero, parts.pronoun, prompt_rng)
    pronoun = _pronoun_for(hero, name, parts.pronoun, prompt_rng)
    trait = hero.trait or (prompt_rng.choice(SPARE_TRAITS) if prompt_rng.random() < 0.5 else None)
    home = spot_for(parts.home, home_key, avoid=trait)
    there = spot_for(parts.destination, home_key, avoid=trait) if parts.destination is not None else home
    noun = hero.noun
    if noun.lower() in name.lower():
        noun = TITLE_NOUNS.get(noun, f"{WORLDS[home.setting].adjective} {noun}")
    intro = indefinite(" ".join(w for w in (trait, noun) if w))
    look = choose_look(hero, prompt_rng, pronoun)
    they, them, their, themselves = PRONOUNS[pronoun]

    other = parts.other
    other_category = other.concept.category if other is not None else None
    companion_concept = _companion_for(there, hero.concept)
    companion = (
        other
        if other is not None and not parts.hostile
        else Character(concept=companion_concept, noun=companion_concept.noun)
    )
    the_comp = _definite(companion)
    a_comp = _indefinite(companion) if companion is other else indefinite(f"friendly {companion.noun}")
    fields = {
        "Name": name,
        "Names": f"{name}'s",
        "intro": intro,
        "noun": noun,
        "they": they,
        "They": cap(they),
        "them": them,
        "their": their,
        "Their": cap(their),
        "themselves": themselves,
        "home_at": home.at,
        "Home_at": cap(home.at),
        "home": home.phrase,
        "Home": cap(home.phrase),
        "there_at": there.at,
        "there": there.phrase,
        "travel": there.world.travel,
        "detail1": there.world.details[0],
        "detail2": there.world.details[1],
        "wonder": there.world.wonder,
        "worn": f"{their} {look.short}",
        "home_was": home.was,
        "a_comp": a_comp,
        "the_comp": the_comp,
        "The_comp": cap(the_comp),
        "opening": {"night": "One starry night", "dusk": "One golden evening"}.get(
            parts.time or "", "One bright morning"
        ),
    }
    if other is not None:
        fields |= {"an_other": _indefinite(other), "the_other": _definite(other), "The_other": cap(_definite(other))}
        fields["menace"] = MENACE.get(other.concept.key, "blocking the only way forward")
        fields["other_obj"] = "them" if other.count > 1 else "it"
    goal = parts.goal or _default_goal(parts, other, there)
    fields["goal"] = goal
    weather = _trouble_weather(parts, other, there)
    fields["trouble"], fields["trouble_short"] = TROUBLES[weather]
    fields["wild"] = WILD_WEATHER.get(weather, "grew wild")
    cast = Cast(
        fields=fields,
        hero=hero,
        other=other,
        hostile=parts.hostile,
        companion_known=other is not None and not parts.hostile,
        has_destination=there is not home,
        other_category=other_category,
        hangs=look.hangs,
        wears=category in (Category.PERSON, Category.ANIMAL),
    )
    return cast, look, home.at + (f", then {there.at}" if there is not home else "")


PRONOUNS: dict[str, tuple[str, str, str, str]] = {
    "she": ("she", "her", "her", "herself"),
    "he": ("he", "him", "his", "himself"),
    "it": ("it", "it", "its", "itself"),
    "they": ("they", "them", "their", "themselves"),
}
# The writer's own names carry a pronoun; a name from the prompt keeps "they" unless the prompt says.
NAME_PRONOUNS = {
    "Mira": "she",
    "Tobin": "he",
    "Ivy": "she",
    "Orrin": "he",
    "Nico": "he",
    "Lumi": "she",
    "Theo": "he",
    "Ines": "she",
    "Arlo": "he",
    "Esme": "she",
    "Rafi": "he",
    "Noor": "she",
    "Yuki": "she",
    "Bea": "she",
    "Otto": "he",
}
LANDMARK_NATIVES = {
    "lighthouse": ("keeper", "lighthouse keeper"),
    "castle": ("knight", ""),
    "tower": ("wizard", ""),
    "windmill": ("farmer", "miller"),
    "pyramid": ("explorer", ""),
    "igloo": ("penguin", ""),
    "bridge": ("giant", "troll"),
    "house": ("child", ""),
    "tent": ("explorer", ""),
}


def _name_for(hero: Character, from_prompt: str, rng: random.Random) -> str:
    """A name from the writer's list that fits what the prompt says of the hero (a girl is not "Tobin")."""
    names = NAMES.get(hero.concept.category, NAMES[Category.PERSON])
    wanted = hero.concept.gender or (from_prompt if from_prompt != "they" else None)
    if wanted:
        names = tuple(n for n in names if NAME_PRONOUNS.get(n, wanted) == wanted) or names
    return rng.choice(names)


def _pronoun_for(hero: Character, name: str, from_prompt: str, rng: random.Random) -> str:
    if hero.concept.gender:
        return hero.concept.gender
    if from_prompt != "they":
        return from_prompt
    if name in NAME_PRONOUNS:
        return NAME_PRONOUNS[name]
    if hero.name:
        return "they"
    if hero.concept.category in (Category.ROBOT, Category.THING):
        return "it"
    return NAME_PRONOUNS.get(name) or rng.choice(("she", "he"))


def _companion_for(spot: Spot, hero: Concept) -> Concept:
    key = spot.world.companion
    if key == hero.key:
        key = "bird" if hero.key != "bird" else "owl"
    return CONCEPTS_BY_KEY[key]


def _definite(character: Character) -> str:
    if character.determiner == "another":
        return f"the other {character.noun}"
    if character.determiner:
        return f"{character.determiner} {character.noun}"
    return f"the {_counted(character)}"


def _counted(character: Character) -> str:
    return pluralize(character.noun) if character.count > 1 else character.noun


def _indefinite(character: Character) -> str:
    if character.determiner == "another":
        return f"another {character.noun}"
    if character.determiner:
        return f"{character.determiner} {character.noun}"
    return _counted(character) if character.count > 1 else indefinite(character.noun)


def _default_goal(parts: StoryParts, other: Character | None, there: Spot) -> str:
    if other is not None and other.determiner != "another":
        the_other = _definite(other)
        if parts.hostile:
            return f"outwit {the_other}"
        if other.concept.category is Category.SKY:
            return f"reach {the_other}"
        if other.concept.category is Category.THING:
            return f"find {the_other}"
        return f"befriend {the_other}" if other.determiner is None else f"help {the_other}"
    if parts.abstract:
        return parts.abstract
    if parts.hero is not None and parts.hero.trait in TRAIT_GOALS:
        return TRAIT_GOALS[parts.hero.trait]
    if parts.destination is not None:
        return f"reach {there.phrase}"
    return there.world.goal


def _trouble_weather(parts: StoryParts, other: Character | None, there: Spot) -> str:
    if other is not None and other.concept.category is Category.WEATHER:
        return other.concept.key
    if parts.time == "night" and "dark" in (parts.goal or ""):
        return "night"
    loved = parts.weather is not None and parts.weather in (parts.goal or "")
    if parts.weather in TROUBLES and not loved:
        return parts.weather
    if loved and there.world.weather == parts.weather:
        return "wind"
    return there.world.weather


def title_for(cast: Cast, rng: random.Random, prompt: str) -> str:
    f = cast.fields
    options: list[str] = []
    goal_words = f["goal"].split()
    if len(goal_words) <= TITLE_MAX_GOAL_WORDS:
        verb = past_tense(goal_words[0])
        options.append(title_case(f"the {f['noun']} who {' '.join([verb, *goal_words[1:]])}"))
    if cast.other is not None:
        options.append(title_case(f"{f['Name']} and {f['the_other']}"))
    options.append(title_case(f"{f['Name']} {f['home_at']}"))
    # A title that is the prompt again says nothing new ("Captain Holloway and the Whale").
    fresh = [title for title in options if title.lower() != prompt.lower()] or [title_case(f"{f['Name']}'s Story")]
    return cap(rng.choice(fresh))


def write_story_sync(request: StoryRequest) -> StoryDraft:
    prompt = clean_prompt(request.prompt)
    parts = parse_prompt(prompt)
    # The hero, look and palette come from the prompt alone, so a longer telling keeps the same hero.
    prompt_rng = seeded("hero", prompt)
    cast, look, where = build_cast(parts, prompt_rng)
    palette = prompt_rng.choice(LOOKS.palettes)
    story_rng = seeded("story", prompt, str(request.scene_count))
    scenes = tell(cast, request.scene_count, story_rng)
    title = title_for(cast, story_rng, strip_preamble(prompt).rstrip(" .!?"))

    f = cast.fields
    friend = ""
    if cast.other is not None:
        friend = f"; {f['Names']} {'rival' if cast.hostile else 'friend'} is {f['the_other']}"
    elif request.scene_count >= min(n for n, arc in ARCS.items() if "meeting" in arc):
        friend = f"; {f['Names']} friend is {f['the_comp']}"
    bible = " ".join(
        [
            f"{f['Name']} is {f['intro']} {look.clause}.",
            f"The story is set {where}{friend}.",
            f"Palette: {palette[0]}, {palette[1]} and {palette[2]}; art style: {clean_style(request.style)}.",
            f"Keep {f['Names']} {look.features} the same in every picture.",
        ]
    )
    log.debug("local story written: %d scenes, title %r", len(scenes), title)
    return StoryDraft(title=title, bible=bible, scenes=scenes)
