"""Reading a story prompt into parts: the hero, where it happens, who else is there, and the goal.

The writer never pastes the prompt into a sentence; it weaves these parts into its own grammar,
so each part has to be the right kind of phrase: a noun for a noun's place, a verb phrase in base
form ("befriend the storm") for a goal's. Words the reader cannot place are left out rather than
guessed at: a story that says less is better than one that says something broken.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace

from bot.providers.local.vocab import (
    ABSTRACT_GOALS,
    ARTICLES,
    AUXILIARIES,
    BE_VERBS,
    CONCEPTS_BY_KEY,
    CONJUNCTIONS,
    DETERMINERS,
    FOREIGN_FUNCTION_WORDS,
    FOREIGN_TRAITS,
    FUNCTION_WORDS,
    HERO_CATEGORIES,
    INFLECTED_VERB_FORMS,
    NEGATIONS,
    NO_ARTICLE,
    PLACE_NAMES,
    POSSESSIVES,
    PREPOSITIONS,
    RELATIVES,
    TITLES,
    TRAITS,
    UNSPACED,
    Category,
    Concept,
    colors_in,
    guess_base,
    lookup,
    pluralize,
    unspaced_concepts,
    verb_base,
)

# Bidirectional overrides and isolates could flip the rest of a Discord message; they carry no meaning here.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
PARSE_MAX_TOKENS = 80  # the hero and the goal come first; a long prompt's tail only adds noise
MAX_WORD_CHARS = 20
MAX_GOAL_WORDS = 8
MAX_NAME_WORDS = 3
OTHER_SCAN_TOKENS = 24

REQUEST_PREAMBLE = re.compile(
    r"^(?:once upon a time,?\s*)?(?:(?:there|here)\s+(?:was|were|lived|once lived)\s+)?(?:please\s+)?"
    r"(?:(?:write|tell|make|create|give|draw|imagine|invent)\s+(?:me\s+|us\s+)?)?"
    r"(?:(?:a|an|the|one)\s+)?(?:(?:short|little|long|bedtime|funny|sweet|new|cute|scary|happy)\s+)*"
    r"(?:story|tale|fable|adventure|book|legend)\s+(?:about|of|where|in which|with|featuring|for)\s+",
    re.IGNORECASE,
)
OPENERS = re.compile(r"^(?:once upon a time,?\s*)?(?:there\s+(?:was|were|lived|once lived)\s+)", re.IGNORECASE)
TOKEN = re.compile(r"[^\W\d_]+(?:['\u2019][^\W\d_]+)*|[,.!?;:]")
SENTENCE_END = frozenset(".!?;:")

LOCATIVE = frozenset(
    {
        "in",
        "at",
        "on",
        "by",
        "near",
        "under",
        "inside",
        "beside",
        "above",
        "below",
        "beneath",
        "behind",
        "beyond",
        "among",
        "from",
        "within",
        "outside",
        "around",
    }
)
DIRECTIONAL = frozenset({"to", "into", "onto", "across", "through", "toward", "towards", "over", "up"})
HOSTILE_VERBS = frozenset(
    {
        "fight",
        "chase",
        "escape",
        "defeat",
        "battle",
        "hunt",
        "outwit",
        "flee",
        "fear",
        "trick",
        "capture",
        "conquer",
        "steal",
        "hate",
        "face",
        "stop",
    }
)
MODAL_VERBS = frozenset(
    {"want", "wish", "hope", "try", "decide", "need", "plan", "long", "yearn", "love", "like", "dream", "learn", "have"}
)
FEAR_WORDS = frozenset({"afraid", "scared", "frightened", "terrified", "fearful"})
SEEK_VERBS = frozenset({"search", "look", "hunt"})  # "searches for X" -> find X
# Capitalised words that open a sentence without naming anyone.
STARTERS = frozenset(
    [
        "once",
        "today",
        "tomorrow",
        "yesterday",
        "somewhere",
        "everyone",
        "nobody",
        "someone",
        "long",
        "far",
        "deep",
        "high",
        "write",
        "tell",
        "make",
        "create",
        "imagine",
        "please",
        "story",
        "tale",
        "two",
        "three",
        "four",
        "five",
        "many",
        "all",
        "every",
        "what",
        "why",
        "how",
        "where",
        "when",
    ]
)
NUMBERS = frozenset({"two", "three", "four", "five", "twin", "twins", "both", "dos", "deux", "zwei", "due"})
SHE_WORDS = frozenset({"she", "her", "herself", "hers"})
HE_WORDS = frozenset({"he", "him", "his", "himself"})
# Concepts that stand for a place when a preposition governs them ("in the clouds", "to the moon").
PLACE_OF: dict[str, str] = {
    "cloud": "sky",
    "moon": "space",
    "star": "space",
    "planet": "space",
    "tree": "forest",
    "night": "",
    "lighthouse": "coast",
    "castle": "castle",
    "pyramid": "desert",
    "igloo": "snowland",
    "bridge": "river",
    "windmill": "farm",
    "tower": "meadow",
    "house": "village",
    "tent": "meadow",
}
UNDER_WATER = frozenset({"sea", "lake", "coast", "river"})
WEATHER_PRIORITY = ("storm", "snow", "rain", "fog", "wind")
STRANDED = frozenset({"lost", "stranded", "trapped", "stuck", "shipwrecked"})
TOGETHER = frozenset({"and", "with", "y", "und", "et", "e", "и", "と", "alongside"})
CHARACTER_CATEGORIES = frozenset({Category.ANIMAL, Category.PERSON, Category.ROBOT, Category.WEATHER, Category.SKY})
# Verbs that say how things are, not what the hero wants.
STATIVE = frozenset({"be", "have", "live", "sit", "stand", "lie", "wear", "seem", "look", "know", "think", "feel"})
# What loving a kind of weather makes a hero want to do.
WEATHER_JOYS = {
    "rain": "dance in the rain",
    "snow": "play in the snow",
    "storm": "chase the storm",
    "fog": "walk in the fog",
    "wind": "fly with the wind",
}
# The trade a named person takes from what they set out to do ("Ada Lovelace builds a machine").
ROLE_OF_VERB = {
    "build": "inventor",
    "invent": "inventor",
    "fix": "inventor",
    "repair": "inventor",
    "paint": "painter",
    "draw": "painter",
    "bake": "baker",
    "cook": "baker",
    "sail": "sailor",
    "sing": "musician",
    "play": "musician",
    "explore": "explorer",
    "grow": "farmer",
    "plant": "farmer",
}


@dataclass(frozen=True)
class Token:
    text: str  # as written, for names
    word: str  # lower case, apostrophes straightened, a possessive 's dropped
    concept: Concept | None = None
    span: int = 1  # how many tokens the concept's phrase takes


@dataclass(frozen=True)
class Character:
    concept: Concept
    noun: str  # the English noun phrase a story uses: "lighthouse keeper", "fox"
    name: str | None = None  # the prompt's own name for it
    trait: str | None = None  # "shy", "little"
    color: str | None = None  # a colour the prompt gave it ("a blue robot")
    determiner: str | None = None  # a possessive the prompt used ("her grandmother")
    count: int = 1


@dataclass(frozen=True)
class Place:
    setting: str  # the backdrop's concept key (coast, forest, space...)
    noun: str | None = None  # the prompt's word for it ("harbour"), when it gave one
    landmark: str | None = None  # lighthouse, castle...
    adjective: str | None = None  # "rainy", "snowy"
    proper: str | None = None  # a real place's name ("Paris")
    within: str | None = None  # "the castle in the clouds": the second place, as its own words


@dataclass(frozen=True)
class StoryParts:
    hero: Character | None
    other: Character | None  # a companion or an antagonist the prompt names
    hostile: bool  # the other is an antagonist
    home: Place | None
    destination: Place | None
    goal: str | None  # a verb phrase in base form: "learn to fly", "befriend the storm"
    weather: str | None  # storm, rain, snow, fog, wind
    time: str | None  # night, dawn, day, dusk
    pronoun: str  # she, he or they
    abstract: str | None  # a goal for a prompt that is one abstract word ("hope")


def clean_prompt(text: str) -> str:
    """Drop control characters and collapse whitespace; keep emoji and every script."""
    kept = "".join(" " if ch in BIDI_CONTROLS or unicodedata.category(ch) in ("Cc", "Cs", "Co") else ch for ch in text)
    return re.sub(r"\s+", " ", kept).strip()


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    for match in TOKEN.finditer(text):
        raw = match.group(0).replace("\u2019", "'")
        word = raw.lower()
        if word.endswith("'s") and len(word) > 2:
            word = word[:-2]
        tokens.append(Token(raw, word))
        if len(tokens) >= PARSE_MAX_TOKENS:
            break
    words = [t.word for t in tokens]
    marked: list[Token] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        found = None if UNSPACED.search(token.word) or token.word in FUNCTION_WORDS else lookup(words, index)
        if found is not None:
            concept, span = found
            marked.append(replace(token, concept=concept, span=span))
            marked.extend(tokens[index + 1 : index + span])
            index += span
            continue
        marked.append(token)
        index += 1
    return marked


def strip_preamble(text: str) -> str:
    stripped = REQUEST_PREAMBLE.sub("", text, count=1)
    return OPENERS.sub("", stripped, count=1) or text


class Reader:
    """One prompt's tokens and the positions already spoken for."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.words = [t.word for t in self.tokens]
        self.shouting = self._is_shouting()
        self.used: set[int] = set()

    def _is_shouting(self) -> bool:
        """All caps or Title Case: capitals then say nothing about names."""
        long_words = [t.text for t in self.tokens if len(t.text) > 3 and t.text.isalpha()]
        if not long_words:
            return False
        return all(w.isupper() for w in long_words) or (
            len(long_words) >= 3 and all(w[0].isupper() for w in long_words)
        )

    def sentence_end(self, start: int) -> int:
        for index in range(start, len(self.tokens)):
            if self.tokens[index].word in SENTENCE_END:
                return index
        return len(self.tokens)

    def governing_preposition(self, index: int) -> str | None:
        """The preposition in front of the noun phrase that ends at ``index`` ("in the rainy city")."""
        back = index - 1
        steps = 0
        while back >= 0 and steps < 3:
            word = self.words[back]
            if word in PREPOSITIONS:
                return word
            if word in DETERMINERS or word in TRAITS or word in FOREIGN_TRAITS or self._is_color(back):
                back -= 1
                steps += 1
                continue
            concept = self.tokens[back].concept
            if concept is not None and concept.category in (Category.SETTING, Category.LANDMARK, Category.WEATHER):
                back -= 1
                steps += 1
                continue
            return None
        return None

    def _is_color(self, index: int) -> bool:
        return bool(colors_in(self.tokens[index].word))

    def modifiers(self, index: int) -> tuple[list[str], str | None, str | None, list[Concept]]:
        """What stands in front of the noun at ``index``: traits, a colour, a determiner, compound nouns."""
        traits: list[str] = []
        color: str | None = None
        determiner: str | None = None
        compounds: list[Concept] = []
        back = index - 1
        while back >= 0 and index - back <= 3:
            token = self.tokens[back]
            word = token.word
            if word in DETERMINERS:
                determiner = word
                break
            if word in TRAITS or word in FOREIGN_TRAITS:
                traits.insert(0, FOREIGN_TRAITS.get(word, word))
            elif self._is_color(back):
                color = color or word
            elif token.concept is not None and token.concept.category in (
                Category.SETTING,
                Category.LANDMARK,
                Category.WEATHER,
            ):
                compounds.insert(0, token.concept)
            else:
                break
            back -= 1
        return traits, color, determiner, compounds


def english_noun(concept: Concept, written: str) -> str:
    """The user's own English word for ``concept`` in the singular ("fishermen" -> "fisherman"), or the
    concept's noun when the word is foreign or an adjective."""
    candidates = [concept.noun, *concept.english]
    if written == concept.plural or written == concept.plural_noun:
        return concept.noun
    for candidate in candidates:
        if written == pluralize(candidate) and candidate in candidates:
            return candidate
    if written in concept.english and written.isascii() and written.isalpha():
        plurals = {pluralize(c) for c in candidates}
        if written not in plurals:
            return written
    return concept.noun


def parse_prompt(prompt: str) -> StoryParts:
    text = strip_preamble(clean_prompt(prompt))
    reader = Reader(text)
    tokens = reader.tokens
    pronoun = _pronoun(reader)

    name, name_span = _find_name(reader)
    hero_index = _find_hero(reader, name_span)
    hero = _character(reader, hero_index) if hero_index is not None else None
    if name:
        if hero is None:
            hero = Character(concept=_concept("explorer"), noun="explorer", name=name)
        else:
            hero = replace(hero, name=name)
    if hero is not None and hero.concept.gender:
        pronoun = hero.concept.gender
    if hero_index is not None:
        reader.used.update(range(hero_index, hero_index + tokens[hero_index].span))
    if name_span:
        reader.used.update(range(*name_span))

    anchor = max([hero_index or 0, *(name_span[1] - 1 for _ in [0] if name_span)])
    home, destination = _places(reader, hero_index)
    if hero is not None and hero_index is not None:
        for concept in reader.modifiers(hero_index)[3]:
            if home is None and concept.category in (Category.SETTING, Category.LANDMARK):
                home = _place_from(concept, None, None)
    goal, other_index, hostile = _goal(reader, anchor if hero is not None else -1, pronoun)
    together = _conjoined(reader, anchor) if hero is not None else None
    if together is not None:
        other_index, hostile = together, False
    other = _find_other(reader, hero_index, other_index)
    if hero is not None and hero.name and hero.concept.key == "explorer" and goal:
        role = ROLE_OF_VERB.get(goal.split()[0])
        if role:
            hero = replace(hero, concept=_concept(role), noun=role)
    if other is not None and other_index is None:
        hostile = hostile or _hostile_between(reader, hero_index, other)
    if hero is not None and hero.count > 1 and other is None:
        other = Character(concept=hero.concept, noun=hero.noun, count=1, determiner="another")

    weathers = {t.concept.key for t in tokens if t.concept is not None and t.concept.category is Category.WEATHER}
    weather = next((key for key in WEATHER_PRIORITY if key in weathers), None)
    time = next((t.concept.key for t in tokens if t.concept is not None and t.concept.category is Category.TIME), None)
    unspaced = [concept for _, concept in unspaced_concepts(text)]
    if hero is None:
        hero = _first_of(unspaced, HERO_CATEGORIES)
        if hero is not None:
            unspaced = [c for c in unspaced if c is not hero.concept]
    if other is None and hero is not None:
        other = _first_of(unspaced, HERO_CATEGORIES | {Category.SKY}, exclude=hero.concept)
    if home is None:
        setting = next((c for c in unspaced if c.category in (Category.SETTING, Category.LANDMARK)), None)
        if setting is not None:
            home = _place_from(setting, None, None)
    weather = weather or next((c.key for c in unspaced if c.category is Category.WEATHER), None)
    time = time or next((c.key for c in unspaced if c.category is Category.TIME), None)

    abstract = None
    plain = [t.word for t in tokens if t.word not in FUNCTION_WORDS and t.word.isalpha()]
    for word in plain:
        if word in ABSTRACT_GOALS:
            abstract = ABSTRACT_GOALS[word]
            break
    return StoryParts(
        hero=hero,
        other=other,
        hostile=hostile,
        home=home,
        destination=destination,
        goal=goal,
        weather=weather,
        time=time,
        pronoun=pronoun,
        abstract=abstract,
    )


def _concept(key: str) -> Concept:
    return CONCEPTS_BY_KEY[key]


def _first_of(
    concepts: list[Concept], categories: frozenset[Category], exclude: Concept | None = None
) -> Character | None:
    for concept in concepts:
        if concept.category in categories and concept is not exclude:
            return Character(concept=concept, noun=concept.noun)
    return None


def _pronoun(reader: Reader) -> str:
    for word in reader.words:
        if word in SHE_WORDS:
            return "she"
        if word in HE_WORDS:
            return "he"
    return "they"


def _find_name(reader: Reader) -> tuple[str | None, tuple[int, int] | None]:
    """A proper name for the hero: "Mira", "Captain Holloway", "a mouse named Pip"."""
    tokens = reader.tokens
    for index, token in enumerate(tokens[:-1]):
        if token.word in ("named", "called") and _nameable(tokens[index + 1]):
            return _title_case(tokens[index + 1].text), (index + 1, index + 2)
    if reader.shouting:
        return None, None
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if not _capitalised_name(reader, index):
            index += 1
            continue
        end = index
        while end < len(tokens) and end - index < MAX_NAME_WORDS and _capitalised_name(reader, end):
            end += 1
        start = index
        if start > 0 and tokens[start - 1].word in TITLES and tokens[start - 1].text[:1].isupper():
            start -= 1
        before = tokens[start - 1].word if start > 0 else ""
        if before in LOCATIVE or before in DIRECTIONAL:
            index = end  # "in Narnia": a place, not a person
            continue
        return " ".join(t.text for t in tokens[start:end]), (start, end)
    return None, None


def _nameable(token: Token) -> bool:
    word = token.word
    return (
        token.text.isalpha()
        and 1 < len(word) <= MAX_WORD_CHARS
        and word not in FUNCTION_WORDS
        and token.concept is None
        and not UNSPACED.search(word)
    )


def _capitalised_name(reader: Reader, index: int) -> bool:
    token = reader.tokens[index]
    if not (token.text[:1].isupper() and _nameable(token)):
        return False
    if token.word in STARTERS or token.word in TITLES or token.word in TRAITS or token.word in FOREIGN_TRAITS:
        return False
    return verb_base(token.word) is None and not colors_in(token.word) and token.word not in PLACE_NAMES


def _title_case(text: str) -> str:
    return text[:1].upper() + text[1:]


def _hero_able(token: Token) -> bool:
    return token.concept is not None and token.concept.category in HERO_CATEGORIES


def _find_hero(reader: Reader, name_span: tuple[int, int] | None) -> int | None:
    tokens = reader.tokens
    if name_span is not None:
        # "Pip, a brave hedgehog" / "Mira the mouse" / "a mouse named Pip" / "Captain Holloway"
        lo, hi = max(0, name_span[0] - 4), min(len(tokens), name_span[1] + 4)
        for index in range(lo, hi):
            if name_span[0] <= index < name_span[1] and tokens[index].word not in TITLES:
                continue
            if _hero_able(tokens[index]) and reader.governing_preposition(index) is None:
                between = range(min(index, name_span[0]), max(index, name_span[1]))
                if not any(tokens[i].word in RELATIVES or tokens[i].word in SENTENCE_END for i in between):
                    return index
        return None
    end = reader.sentence_end(0)
    for index in range(end):
        token = tokens[index]
        if _hero_able(token) and reader.governing_preposition(index) is None:
            return index
    return None


def _character(reader: Reader, index: int) -> Character:
    token = reader.tokens[index]
    assert token.concept is not None
    concept = token.concept
    traits, color, determiner, compounds = reader.modifiers(index)
    written = " ".join(reader.words[index : index + token.span])
    noun = english_noun(concept, written)
    compound_index = index - 1
    compound = next((c for c in compounds if c.category in (Category.SETTING, Category.LANDMARK)), None)
    written_compound = reader.words[compound_index] if compound_index >= 0 else ""
    if compound is not None and (written_compound == compound.noun or written_compound in compound.english):
        noun = f"{written_compound} {noun}"
    count = 2 if index > 0 and reader.words[index - 1] in NUMBERS else 1
    if written != concept.noun and (written == concept.plural_noun or written == pluralize(noun)):
        count = max(count, 2)
    return Character(
        concept=concept,
        noun=noun,
        trait=traits[0] if traits else None,
        color=color,
        determiner=determiner if determiner in POSSESSIVES else None,
        count=count,
    )


def _place_from(concept: Concept, written: str | None, adjective: str | None) -> Place:
    setting = concept.key
    landmark = None
    if concept.category is Category.LANDMARK:
        landmark = concept.key
        setting = PLACE_OF.get(concept.key) or concept.habitat or "meadow"
    elif concept.category is not Category.SETTING:
        setting = PLACE_OF.get(concept.key) or concept.habitat or "meadow"
        if concept.key == "moon":
            return Place(setting=setting, noun="moon", adjective=adjective)
        if concept.key in ("star", "planet"):
            return Place(setting=setting, noun=None, adjective=adjective)
        if concept.key == "cloud":
            return Place(setting="sky", noun="clouds")
        return Place(setting=setting, adjective=adjective)
    if written in PLACE_NAMES:
        return Place(setting=setting, landmark=landmark, proper=written.title())
    noun = english_noun(concept, written) if written else None
    if noun in NO_ARTICLE:
        noun = None
    return Place(setting=setting, noun=noun, landmark=landmark, adjective=adjective)


def _places(reader: Reader, hero_index: int | None) -> tuple[Place | None, Place | None]:
    """Where the story starts (home) and where it goes (destination), with the words the prompt used."""
    home: Place | None = None
    destination: Place | None = None
    tokens = reader.tokens
    for index, token in enumerate(tokens):
        concept = token.concept
        if concept is None or index in reader.used:
            continue
        is_place = concept.category in (Category.SETTING, Category.LANDMARK)
        preposition = reader.governing_preposition(index)
        if not is_place and not (preposition and concept.key in PLACE_OF and concept.key != "night"):
            continue
        if not is_place and preposition in (None, "of", "with"):
            continue
        if preposition == "under" and concept.key in UNDER_WATER:
            concept = _concept("underwater")
        written = " ".join(reader.words[index : index + token.span])
        traits, _, _, _ = reader.modifiers(index)
        adjective = next((t for t in traits if t not in ("little", "small", "tiny", "big", "huge")), None)
        weather_word = _weather_adjective(reader, index)
        place = _place_from(concept, written, adjective or weather_word)
        # "the castle in the clouds" / "the city under the sea": one place inside another
        nested = _nested_place(reader, index + token.span)
        if nested is not None:
            place = replace(place, setting=nested[0].setting, within=nested[1])
            if concept.category is Category.SETTING and concept.key in ("castle", "city", "village"):
                place = replace(place, landmark=place.landmark or concept.key)
            reader.used.update(range(index, nested[2]))
        reader.used.update(range(index, index + token.span))
        verb_before = _verb_before(reader, index)
        acted_on = preposition is None and verb_before is not None and verb_before not in STATIVE
        stranded = any(w in STRANDED for w in reader.words[max(0, index - 4) : index])
        if preposition in DIRECTIONAL or acted_on or stranded:
            destination = destination or place
        else:
            home = home or place
    if home is not None and destination is not None and home.setting == destination.setting:
        destination = None
    return home, destination


def _weather_adjective(reader: Reader, index: int) -> str | None:
    for back in range(max(0, index - 2), index):
        word = reader.words[back]
        concept = reader.tokens[back].concept
        if concept is not None and concept.category is Category.WEATHER and word.endswith("y"):
            return word
    return None


def _nested_place(reader: Reader, after: int) -> tuple[Place, str, int] | None:
    tokens = reader.tokens
    if after >= len(tokens) or tokens[after].word not in ("in", "on", "under", "above", "beneath", "below"):
        return None
    preposition = tokens[after].word
    for index in range(after + 1, min(after + 4, len(tokens))):
        concept = tokens[index].concept
        if concept is None:
            if tokens[index].word in DETERMINERS or tokens[index].word in TRAITS:
                continue
            return None
        if preposition in ("under", "beneath", "below") and concept.key in UNDER_WATER:
            place = Place(setting="underwater")
        elif concept.category is Category.SETTING or concept.key in PLACE_OF:
            place = _place_from(concept, tokens[index].word, None)
        else:
            return None
        words = " ".join(reader.words[after : index + tokens[index].span])
        # "deep under the sea", "high in the clouds": the writer's words around the prompt's
        lead = {"under": "deep", "beneath": "deep", "below": "far", "in": "high", "above": "high"}.get(preposition)
        if lead and (preposition != "in" or place.setting == "sky"):
            words = f"{lead} {words}"
        return place, words, index + tokens[index].span
    return None


def _verb_before(reader: Reader, index: int) -> str | None:
    for back in range(index - 1, max(-1, index - 4), -1):
        base = verb_base(reader.words[back])
        if base is not None:
            return base
    return None


def _conjoined(reader: Reader, anchor: int) -> int | None:
    """A character joined to the hero: "a girl and her grandmother", "El zorro y la luna"."""
    index = anchor + reader.tokens[anchor].span
    if index >= len(reader.tokens) or reader.words[index] not in TOGETHER:
        return None
    for cursor in range(index + 1, min(index + 4, len(reader.tokens))):
        token = reader.tokens[cursor]
        if token.concept is not None:
            if token.concept.category in CHARACTER_CATEGORIES | {Category.THING} and cursor not in reader.used:
                return cursor
            return None
        if token.word not in DETERMINERS and token.word not in TRAITS and token.word not in FOREIGN_FUNCTION_WORDS:
            return None
    return None


def _find_other(reader: Reader, hero_index: int | None, other_index: int | None) -> Character | None:
    tokens = reader.tokens
    if other_index is not None:
        if _describes_weather(reader, other_index):
            return None  # "guards a snowy castle": the castle is a place, and "snowy" its weather, not a friend
        return _character(reader, other_index)
    # Only the prompt's opening names the cast; a long prompt's later nouns are scenery.
    for index, token in enumerate(tokens[: min(reader.sentence_end(0), OTHER_SCAN_TOKENS)]):
        if index in reader.used or token.concept is None:
            continue
        category = token.concept.category
        preposition = reader.governing_preposition(index)
        if category in CHARACTER_CATEGORIES - {Category.WEATHER, Category.SKY} and preposition in (
            None,
            "with",
            "of",
            "for",
            "from",
        ):
            if hero_index is not None and tokens[hero_index].concept is token.concept:
                continue
            reader.used.add(index)
            return _character(reader, index)
        if category is Category.SKY and preposition in (None, "with", "of"):
            return _character(reader, index)
    return None


def _describes_weather(reader: Reader, index: int) -> bool:
    """A weather word written as an adjective before a noun ("a snowy castle", "the rainy forest")."""
    concept = reader.tokens[index].concept
    word = reader.words[index]
    following = reader.tokens[index + 1].concept if index + 1 < len(reader.tokens) else None
    return (
        concept is not None
        and concept.category is Category.WEATHER
        and word != concept.noun
        and word.endswith("y")
        and following is not None
    )


def _hostile_between(reader: Reader, hero_index: int | None, other: Character) -> bool:
    start = (hero_index or 0) + 1
    for word in reader.words[start:]:
        base = verb_base(word)
        if base in HOSTILE_VERBS or word in FEAR_WORDS:
            return True
        if base is not None:
            return False
    return False


def _goal(reader: Reader, anchor: int, pronoun: str) -> tuple[str | None, int | None, bool]:
    """The verb phrase after the hero, in base form, and the index of a character it names.

    "who learns to fly" -> "learn to fly"; "befriends a storm" -> "befriend the storm";
    "afraid of the dark" -> "face the dark"; "couldn't sleep" -> "learn to sleep".
    """
    tokens = reader.tokens
    words = reader.words
    if anchor < 0:
        return None, None, False
    index = anchor + tokens[anchor].span
    end = reader.sentence_end(index)
    negated = False
    while index < end:
        word = words[index]
        if word in RELATIVES or word == "," or word in ("always", "once", "still", "just", "really", "also"):
            index += 1
            continue
        if word in CONJUNCTIONS or word == "with":
            index = _skip_noun_phrase(reader, index + 1, end)
            continue
        if word in FEAR_WORDS or word == "lost":
            break
        noun_phrase = word in DETERMINERS or word in TRAITS or tokens[index].concept is not None
        if noun_phrase and (verb_base(word) is None or word in DETERMINERS):
            index = _skip_noun_phrase(reader, index, end)
            continue
        if word in NEGATIONS:
            negated = True
            index += 1
            continue
        if word in AUXILIARIES or word in BE_VERBS or word == "going":
            index += 1
            continue
        break
    if index >= end:
        return None, None, False
    word = words[index]
    if word in FEAR_WORDS:
        rest = index + 1
        if rest < end and words[rest] == "of":
            phrase, other = _object_phrase(reader, rest + 1, end, pronoun, definite=True)
            if phrase:
                return f"face {phrase}", other, True
        return "find some courage", None, False
    if word == "lost":
        after, other = _object_phrase(reader, index + 1, end, pronoun, definite=True)
        if after and not after.startswith(("in ", "at ", "on ")):
            return f"find {after}", other, False
        return "find the way home", None, False
    base = verb_base(word)
    if base is None:
        if word.endswith("s") and word.isalpha() and word.isascii() and index == anchor + tokens[anchor].span:
            base = guess_base(word)
        else:
            return None, None, False
    rest = index + 1
    if base in MODAL_VERBS and rest < end and words[rest] in ("to", "of"):
        connector = words[rest]
        rest += 1
        if rest >= end:
            return None, None, False
        inner = verb_base(words[rest])
        if inner is None:
            return None, None, False
        if connector == "of" and not words[rest].endswith("ing"):
            return None, None, False
        base_phrase, other = _verb_phrase(reader, rest, end, pronoun, inner)
        if base == "learn" and connector == "to":
            base_phrase = f"learn to {base_phrase}"
        if negated:
            base_phrase = f"learn to {base_phrase}" if not base_phrase.startswith("learn") else base_phrase
        return base_phrase, other, False
    if base in SEEK_VERBS and rest < end and words[rest] == "for":
        phrase, other = _object_phrase(reader, rest + 1, end, pronoun, definite=True)
        return (f"find {phrase}" if phrase else None), other, False
    if base in ("miss", "lose"):
        phrase, other = _object_phrase(reader, rest, end, pronoun, definite=base == "lose")
        if not phrase:
            return None, None, False
        return (f"see {phrase} again" if base == "miss" else f"find {phrase}"), other, False
    if base in ("love", "like") and rest < end and words[rest] not in ("to",):
        concept = tokens[rest].concept
        if concept is not None and concept.key in WEATHER_JOYS:
            return WEATHER_JOYS[concept.key], None, False
        phrase, other = _object_phrase(reader, rest, end, pronoun, definite=False, bare=True)
        if phrase and len(phrase.split()) <= 3:
            return f"find the best {phrase} in the world", other, False
        return None, None, False
    if base in STATIVE:
        return None, None, False
    phrase, other = _verb_phrase(reader, index, end, pronoun, base)
    if negated:
        phrase = {"sleep": "fall asleep"}.get(phrase, f"learn to {phrase}")
    return phrase, other, base in HOSTILE_VERBS


def _skip_noun_phrase(reader: Reader, index: int, end: int) -> int:
    while index < end:
        token = reader.tokens[index]
        word = token.word
        if word in DETERMINERS or word in TRAITS or word in FOREIGN_TRAITS:
            index += 1
            continue
        if token.concept is not None and verb_base(word) is None:
            index += token.span
            continue
        if word == ",":
            index += 1
            continue
        if verb_base(word) is None and word not in FUNCTION_WORDS and word.isalpha() and not _looks_verb(word):
            index += 1  # an unknown noun or adjective inside the phrase
            continue
        break
    return index


def _looks_verb(word: str) -> bool:
    return word.endswith("s") and not word.endswith("ss") and len(word) > 3


def _verb_phrase(reader: Reader, index: int, end: int, pronoun: str, base: str) -> tuple[str, int | None]:
    """``base`` then its object, up to a clause break: "paint the sea", "build a raft to cross the river"."""
    words: list[str] = ["become" if base == "be" else base]
    other_index: int | None = None
    cursor = index + 1
    while cursor < end and len(words) < MAX_GOAL_WORDS:
        token = reader.tokens[cursor]
        word = token.word
        if word in RELATIVES or word == "," or word in ("because", "but", "while", "when", "until", "so", "if"):
            break
        if word == "and":
            following = reader.words[cursor + 1] if cursor + 1 < end else ""
            if verb_base(following) is not None and following in INFLECTED_VERB_FORMS | {"then"}:
                words.append("and")
                cursor += 1
                continue
            if not following or following in DETERMINERS or following in POSSESSIVES or verb_base(following) is None:
                break
        if UNSPACED.search(word) or len(word) > MAX_WORD_CHARS or not word.replace("'", "").isalpha():
            break
        if word in INFLECTED_VERB_FORMS and words[-1] in ("and", "to"):
            word = verb_base(word) or word
        elif word in POSSESSIVES:
            word = _possessive(pronoun)
        elif word in ("himself", "herself", "themselves", "itself"):
            word = _reflexive(pronoun)
        elif word in ("a", "an") and base not in ("be", "become") and _names_character(reader, cursor + 1, end):
            word = "the"
        if (
            token.concept is not None
            and token.concept.category in CHARACTER_CATEGORIES
            and cursor not in reader.used
            and base not in ("be", "become")
        ):
            other_index = other_index if other_index is not None else cursor
        if token.text[:1].isupper() and not reader.shouting and token.concept is None and word not in FUNCTION_WORDS:
            word = token.text
        words.append(word)
        reader.used.add(cursor)
        cursor += 1
    return _tidy(words), other_index


def _names_character(reader: Reader, index: int, end: int) -> bool:
    for cursor in range(index, min(end, index + 3)):
        concept = reader.tokens[cursor].concept
        if concept is not None:
            return concept.category in CHARACTER_CATEGORIES
        if reader.words[cursor] not in TRAITS:
            return False
    return False


def _object_phrase(
    reader: Reader, index: int, end: int, pronoun: str, *, definite: bool, bare: bool = False
) -> tuple[str, int | None]:
    """The noun phrase at ``index``: "the dark", "her dog", "the lost map"."""
    words: list[str] = []
    other_index: int | None = None
    cursor = index
    while cursor < end and len(words) < 5:
        token = reader.tokens[cursor]
        word = token.word
        if word in RELATIVES or word in CONJUNCTIONS or word == "," or word in PREPOSITIONS:
            break
        if UNSPACED.search(word) or len(word) > MAX_WORD_CHARS or not word.replace("'", "").isalpha():
            break
        if word in ARTICLES:
            if not bare:
                words.append("the" if definite or _names_character(reader, cursor + 1, end) else word)
            cursor += 1
            continue
        if word in POSSESSIVES:
            words.append(_possessive(pronoun))
            cursor += 1
            continue
        if token.concept is not None:
            if token.concept.category is Category.TIME and token.concept.key == "night":
                words.append("dark" if word == "dark" else word)
            else:
                words.append(" ".join(reader.words[cursor : cursor + token.span]))
                if token.concept.category in CHARACTER_CATEGORIES and other_index is None:
                    other_index = cursor
            cursor += token.span
            break
        if word in INFLECTED_VERB_FORMS and not (words and words[-1] in ARTICLES | POSSESSIVES | {"the"}):
            break
        words.append(word)
        cursor += 1
    if words and words[-1] in ARTICLES:
        words.pop()
    phrase = _tidy(words)
    if phrase and definite and phrase.split()[0] not in ("the", *POSSESSIVES) and not bare:
        phrase = f"the {phrase}"
    return phrase, other_index


def _possessive(pronoun: str) -> str:
    return {"she": "her", "he": "his"}.get(pronoun, "their")


def _reflexive(pronoun: str) -> str:
    return {"she": "herself", "he": "himself"}.get(pronoun, "themselves")


def _tidy(words: list[str]) -> str:
    """No doubled words, and nothing dangling at the end ("learn to" -> "learn")."""
    kept: list[str] = []
    for word in words:
        if kept and kept[-1].lower() == word.lower():
            continue
        kept.append(word)
    while kept and (kept[-1].lower() in FUNCTION_WORDS or kept[-1] in TITLES) and len(kept) > 1:
        kept.pop()
    return " ".join(kept)
