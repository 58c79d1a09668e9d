"""Reading an image request back into what the picture must show.

The request carries the story's bible, the style and the scene's text (bot.image_stage._image_prompt):
the bible fixes the hero (kind and colours) and the palette for every scene; the scene's own text
says where it happens, what is there, the time of day and the weather. The same vocabulary that
wrote the story (local_vocab) reads it, so the writer's words come back as the right drawings.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from bot.providers.local.prompt import LOCATIVE, PLACE_OF, UNDER_WATER, Reader, Token, clean_prompt
from bot.providers.local.styles import resolve_style
from bot.providers.local.vocab import (
    COLOR_PATTERN,
    COLORS,
    CONCEPTS_BY_KEY,
    HERO_CATEGORIES,
    Category,
    Color,
    Concept,
    colors_in,
    unspaced_concepts,
)

DEFAULT_PALETTE: tuple[Color, Color, Color] = (COLORS["ochre"], COLORS["teal"], COLORS["cream"])
SKIN_TONES: tuple[Color, ...] = ((241, 205, 170), (224, 172, 130), (198, 140, 100), (150, 100, 70), (250, 220, 190))
WEATHER_PRIORITY = ("storm", "snow", "rain", "fog", "wind")
# "the storm had passed": weather a scene says is over is not drawn.
WEATHER_OVER = re.compile(
    r"\b(storm|rain|snow|fog|mist|wind)\w*\s+(?:had\s+|has\s+)?(?:passed|cleared|ended|stopped|lifted|melted|"
    r"blown over|blew over|died down|gone)",
    re.IGNORECASE,
)
VEHICLES = ("boat", "raft", "ship", "rocket", "balloon", "sled", "train", "car")
WATER_SETTINGS = frozenset({"sea", "coast", "river", "lake", "island", "swamp"})
MAX_SUBJECTS = 4
WISH = re.compile(
    r"\b(wanted to|dream|meant to|the day to|managed to|wondered if|would ever|more than anything|loved)\b",
    re.IGNORECASE,
)
FLEW = re.compile(r"\b(?:managed to|learned to|at last)\b[^.]*\b(?:fly|flew|soar)", re.IGNORECASE)
BIBLE_FRIEND = re.compile(r"\b(friend|companion|rival|enemy)\s+is\s+([^.;]+)", re.IGNORECASE)
SECTION = re.compile(r"^(?:Style:\s*(?P<style>.*)|Scene \d+:\s*(?P<scene>.*))$", re.DOTALL)


@dataclass(frozen=True)
class HeroLook:
    kind: str  # a concept key (fox, keeper, robot, teapot) or "creature" for something unknown
    category: Category
    main: Color  # fur, coat, plates, paint
    accent: Color  # scarf, boots, antenna light, ribbon
    hair: Color
    skin: Color
    name: str


@dataclass(frozen=True)
class ScenePlan:
    setting: str
    landmarks: tuple[str, ...]
    subjects: tuple[str, ...]  # concept keys, the scene's order
    companion: str | None  # the bible's friend (or rival) when this scene names it
    rival: bool
    time: str  # dawn, day, dusk, night
    weather: str | None  # storm, rain, snow, fog, wind
    vehicle: str | None  # what the hero rides in this scene
    hero: HeroLook
    palette: tuple[Color, Color, Color]
    style: str
    airborne: bool = False  # the scene says the hero has learned to fly


def split_request(prompt: str, scene_text: str) -> tuple[str, str, str]:
    """(bible, style, scene) from an image prompt built like ``bible\\n\\nStyle: x.\\n\\nScene N: text``."""
    bible_parts: list[str] = []
    style = ""
    scene = ""
    for block in re.split(r"\n\s*\n", prompt.strip()):
        match = SECTION.match(block.strip())
        if match and match.group("style") is not None:
            style = clean_prompt(match.group("style"))
        elif match and match.group("scene") is not None:
            scene = clean_prompt(match.group("scene"))
        else:
            bible_parts.append(clean_prompt(block))
    bible = " ".join(bible_parts)
    if not scene and not bible_parts[1:]:
        # a bare prompt: it is the scene, and all the bible there is
        scene = bible
    return bible, style, clean_prompt(scene_text) or scene


def stable_index(text: str, modulo: int) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:4], "big") % modulo


def read_hero(bible: str) -> HeroLook:
    """The hero's kind and colours from the bible's first sentence ("Ember is a fox with russet fur ...")."""
    first = re.split(r"(?<=[.!?])\s", bible.strip(), maxsplit=1)[0] if bible.strip() else ""
    name, sep, description = first.partition(" is ")
    if not sep or len(name) > 40:
        name, description = "", first
    concepts = [c for c in _concepts(description) if c.category in HERO_CATEGORIES]
    kind = concepts[0] if concepts else None
    colors = [color for _, color in colors_in(description)]
    seed = stable_index(bible or "hero", 1 << 16)
    if kind is None:
        category, key = Category.PERSON, "creature" if description.strip() else "explorer"
    else:
        category, key = kind.category, kind.key
    natural = [COLORS[c] for c in (kind.colors if kind else ()) if c in COLORS]
    main = colors[0] if colors else (natural[0] if natural else _pick(seed, list(COLORS.values())))
    accent = colors[1] if len(colors) > 1 else _pick(seed >> 3, [COLORS[c] for c in ("red", "teal", "yellow", "blue")])
    hair = colors[2] if len(colors) > 2 else _pick(seed >> 5, [COLORS[c] for c in ("brown", "black", "ginger")])
    return HeroLook(
        kind=key,
        category=category,
        main=main,
        accent=accent,
        hair=hair,
        skin=SKIN_TONES[stable_index(name or bible, len(SKIN_TONES))],
        name=name.strip(),
    )


def _pick(seed: int, options: list[Color]) -> Color:
    return options[seed % len(options)]


def read_palette(bible: str) -> tuple[Color, Color, Color]:
    match = re.search(r"palette:?\s*([^.;]*)", bible, re.IGNORECASE)
    colors = [color for _, color in colors_in(match.group(1))] if match else []
    if len(colors) >= 3:
        return colors[0], colors[1], colors[2]
    return DEFAULT_PALETTE


def read_style(style_line: str, bible: str, scene: str) -> str:
    art = re.search(r"art style:?\s*([^.;]*)", bible, re.IGNORECASE)
    return resolve_style(style_line or (art.group(1) if art else "") or scene)


def _concepts(text: str) -> list[Concept]:
    return [t.concept for t in Reader(text).tokens if t.concept is not None] + [c for _, c in unspaced_concepts(text)]


def _places(reader: Reader) -> tuple[list[str], list[str]]:
    """Settings and landmarks the text puts the scene in, in order."""
    settings: list[str] = []
    landmarks: list[str] = []
    for index, token in enumerate(reader.tokens):
        concept = token.concept
        if concept is None:
            continue
        preposition = reader.governing_preposition(index)
        if concept.category is Category.SETTING:
            if concept.key == "sky" and preposition not in ("in", "into", "through", "above", "across", "up"):
                continue
            key = "underwater" if preposition in ("under", "beneath") and concept.key in UNDER_WATER else concept.key
            settings.append(key)
        elif concept.category is Category.LANDMARK:
            landmarks.append(concept.key)
            settings.append(PLACE_OF.get(concept.key) or concept.habitat or "meadow")
        elif concept.key in ("moon", "cloud") and preposition in LOCATIVE | {"to", "toward"}:
            settings.append(PLACE_OF[concept.key])
    return settings, landmarks


# A place inside another wins: "the city deep under the sea" is under the sea, "the castle high in the
# clouds" is in the sky.
ENCLOSING = ("underwater", "sky", "space")
BUILDINGS = {"castle": "castle", "city": "tower", "village": "house"}


def _main_setting(settings: list[str]) -> str:
    return next((key for key in ENCLOSING if key in settings), settings[0])


def _weather_now(text: str) -> set[str]:
    """The weather a scene says is happening: not weather that is only wished for ("wanted to befriend
    the storm"), already won ("had managed to befriend the storm") or a friend ("with the storm")."""
    found: set[str] = set()
    for sentence in re.split(r"(?<=[.!?;:])\s+", text):
        if WISH.search(sentence):
            continue
        reader = Reader(sentence)
        for index, token in enumerate(reader.tokens):
            concept = token.concept
            weather = concept is not None and concept.category is Category.WEATHER
            if weather and concept is not None and reader.governing_preposition(index) != "with":
                found.add(concept.key)
    return found


def _where_now(text: str) -> str:
    """The scene's words about where it is now: a place in a wish ("meant to sail to the moon") or in a
    goal already reached is not where the scene happens."""
    kept = []
    for sentence in re.split(r"(?<=[.!?;:])\s+", text):
        wish = WISH.search(sentence)
        kept.append(sentence[: wish.start()] if wish else sentence)
    return " ".join(kept)


def _without_name(text: str, name: str) -> str:
    """The scene text without the hero's name, so "Robin" is never read as a bird."""
    return re.sub(re.escape(name), " ", text) if name else text


def plan_scene(prompt: str, scene_text: str) -> ScenePlan:
    bible, style_line, scene = split_request(prompt, scene_text)
    hero = read_hero(bible)
    # Without the hero's name ("Robin" is not a bird) or colour words ("her coral sweater" is no reef).
    text = COLOR_PATTERN.sub(" ", _without_name(scene, hero.name))
    reader = Reader(text)
    settings, landmarks = _places(Reader(_where_now(text)))
    where = re.search(r"story is set ([^.;]*)", bible, re.IGNORECASE)
    home_settings, home_landmarks = _places(Reader(where.group(1))) if where else ([], [])
    setting = _main_setting(settings or home_settings or ["meadow"])
    if not landmarks and (not settings or setting == _main_setting(home_settings or [""])):
        landmarks = home_landmarks
    # A built place inside another (a castle in the clouds, a city under the sea) is drawn as its buildings.
    here = settings or home_settings
    for built, building in BUILDINGS.items():
        inside = built in here and (built == "castle" or (built != setting and setting in ENCLOSING))
        if inside and building not in landmarks:
            landmarks = [building, *landmarks]

    friend_match = BIBLE_FRIEND.search(bible)
    friend = None
    rival = False
    if friend_match:
        friends = [c for c in _concepts(friend_match.group(2)) if c.category is not Category.SETTING]
        friend = friends[0].key if friends else None
        rival = friend_match.group(1).lower() in ("rival", "enemy")

    over = {m.group(1).lower() for m in WEATHER_OVER.finditer(text)}
    tokens: list[Token] = [t for t in reader.tokens if t.concept is not None]
    concepts = [t.concept for t in tokens if t.concept is not None] + [c for _, c in unspaced_concepts(text)]
    weathers = {key for key in _weather_now(text) if key not in over}
    if "storm" in over or "rain" in over:
        concepts.append(CONCEPTS_BY_KEY["rainbow"])
    weather = next((w for w in WEATHER_PRIORITY if w in weathers), None)
    now = [t.concept for t in Reader(_where_now(text)).tokens if t.concept is not None]
    time = next((c.key for c in now if c.category is Category.TIME), None)
    if time is None:
        time = "night" if any(c.key in ("moon", "star", "aurora") for c in concepts) else "day"
    if setting == "space":
        time = "night"

    subjects: list[str] = []
    companion = None
    for concept in concepts:
        if concept.key == friend:
            companion = concept.key
            continue
        if concept.category not in HERO_CATEGORIES | {Category.PROP, Category.SKY}:
            continue
        if concept.key == hero.kind or concept.key in subjects or concept.key in landmarks:
            continue
        if concept.key == "moon" and setting == "space":
            continue  # the ground the scene stands on, drawn by the backdrop
        subjects.append(concept.key)
    vehicle = next((key for key in VEHICLES if key in subjects), None)
    if vehicle in ("boat", "raft", "ship") and setting not in WATER_SETTINGS:
        setting = "river" if vehicle == "raft" else "sea"
    subjects = [key for key in subjects if key != vehicle][:MAX_SUBJECTS]
    return ScenePlan(
        setting=setting,
        landmarks=tuple(dict.fromkeys(landmarks))[:2],
        subjects=tuple(subjects),
        companion=companion,
        rival=rival,
        time=time,
        weather=weather,
        vehicle=vehicle,
        airborne=bool(FLEW.search(text)),
        hero=hero,
        palette=read_palette(bible),
        style=read_style(style_line, bible, scene),
    )
