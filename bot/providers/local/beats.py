"""The beats of an embedded story (local-template): setup, meeting, journey, trouble, turn, resolution.

Each beat is two or three sentences chosen from a few shapes; every slot in them (``{Name}``,
``{goal}``, ``{there_at}``) is filled by local_text with a phrase already in grammatical form, so a
template never decides grammar it cannot see. Nearly every beat says where it happens, because the
illustrator draws each scene from its own words.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from bot.providers.local.prompt import Character
from bot.providers.local.vocab import Category

ARCS: dict[int, list[str]] = {
    1: ["whole"],
    2: ["setup", "finale"],
    3: ["setup", "trouble", "resolution"],
    4: ["setup", "trouble", "turn", "resolution"],
    5: ["setup", "meeting", "trouble", "turn", "resolution"],
    6: ["setup", "meeting", "journey", "trouble", "turn", "resolution"],
    7: ["setup", "meeting", "journey", "trouble", "darkest", "turn", "resolution"],
    8: ["setup", "meeting", "journey", "wonder", "trouble", "darkest", "turn", "resolution"],
    9: ["setup", "meeting", "journey", "wonder", "trouble", "darkest", "turn", "climax", "resolution"],
    10: ["setup", "departure", "meeting", "journey", "wonder", "trouble", "darkest", "turn", "climax", "resolution"],
}


def arc_phases(scene_count: int) -> list[str]:
    """The beats of a story of ``scene_count`` scenes: setup, trouble, turn, resolution, richer when longer."""
    return list(ARCS[max(1, min(scene_count, max(ARCS)))])


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


@dataclass(frozen=True)
class Cast:
    """Everything a template may say, already in grammatical form."""

    fields: dict[str, str]
    hero: Character
    other: Character | None
    hostile: bool
    companion_known: bool  # the prompt named the companion, so no meeting scene introduces it
    has_destination: bool
    other_category: Category | None
    hangs: bool  # the hero wears something to hang by the door at the end
    wears: bool  # the hero wears something at all (robots and teapots do not)


def _setup(cast: Cast, rng: random.Random, introduce: bool, depart: bool) -> list[str]:
    """The hero, home and goal; ``introduce`` a companion the prompt named when no meeting scene will,
    and ``depart`` for the destination when no later scene sets off."""
    f = cast.fields
    openers = [("{Name} was {intro} who lived {home_at}.", "More than anything, {Name} wanted to {goal}.")]
    openers.append(("{Home_at} lived {intro} called {Name}.", "{They} had one dream: to {goal}."))
    if f["noun"].lower() not in f["Name"].lower():
        openers.append(
            ("{opening} {home_at}, {Name} the {noun} woke up with a plan.", "Today was the day to {goal}, at last.")
        )
    openers.append(
        ("{Name} was {intro} who lived {home_at}.", "Everyone said it could not be done, but {Name} meant to {goal}.")
    )
    if cast.wears:
        openers.append(
            (
                "{Home_at} lived {intro} called {Name}, who never went anywhere without {worn}.",
                "{They} had one dream: to {goal}.",
            )
        )
    first, second = rng.choice(openers)
    if cast.has_destination and f["goal"] == "find the way home":
        first, second = (
            "{Name} was {intro} from {home}, but one day {they} ended up lost {there_at}.",
            "More than anything, {Name} wanted to find the way home.",
        )
    sentences = [first, second]
    other_in_goal = cast.other is not None and f.get("the_other", "\0") in f["goal"]
    party = "{Name}"
    if introduce and cast.companion_known and not other_in_goal and _walks(cast):
        if depart and cast.has_destination:
            party = "{Name}, with {the_other} alongside,"
        else:
            sentences.append("{Name} would not go alone: {the_other} was coming too.")
    if depart and cast.has_destination and len(sentences) < 3 and f["goal"] != "find the way home":
        sentences.append(f"So, that very morning, {party} set off {{travel}}.")
    return sentences


def _walks(cast: Cast) -> bool:
    """Whether the prompt's companion walks beside the hero (a grandmother does; a storm or the moon does not)."""
    return cast.other_category in (Category.ANIMAL, Category.PERSON, Category.ROBOT, Category.THING)


def _meeting(cast: Cast, rng: random.Random, depart: bool) -> list[str]:
    """Who the hero meets, before setting off (at home) when a later scene is the journey."""
    here = "{home_at}" if cast.has_destination and not depart else "{there_at}"
    return [line.replace("{there_at}", here) for line in _meeting_lines(cast, rng, depart)]


def _meeting_lines(cast: Cast, rng: random.Random, depart: bool) -> list[str]:
    if cast.other is not None and cast.hostile:
        return [
            "Far off {there_at}, {Name} caught sight of {the_other} for the first time.",
            "Everyone said that nobody should ever go near {other_obj}.",
        ]
    if cast.other is not None and cast.other_category is Category.WEATHER:
        return [
            "That evening {the_other} came rolling in over {there}, grumbling and restless.",
            "{Name} did not hide; {they} called out a friendly hello instead.",
        ]
    if cast.other is not None and cast.other_category is Category.SKY:
        return [
            "That night {the_other} shone brighter than ever {there_at}.",
            "It almost seemed to be calling {Name} by name.",
        ]
    if cast.companion_known and cast.fields["the_other"] in cast.fields["goal"]:
        return [
            "Far off {there_at}, {Name} caught sight of {the_other} for the first time.",
            "{The_other} looked back, curious, and then was gone again.",
        ]
    if cast.companion_known:
        if depart and cast.has_destination:
            return [
                "{The_other} was waiting at the edge of {home}, ready to go.",
                "The two of them set off {travel}, side by side.",
            ]
        return [
            "{The_other} was waiting at the edge of {home}, ready to go.",
            "The two of them set off side by side, talking as if they had always been friends.",
        ]
    return rng.choice(
        [
            [
                "On the way {Name} met {a_comp}, who knew every secret {there_at}.",
                "{The_comp} offered to come along, and {Name} gladly agreed.",
            ],
            [
                "{Name} was resting {there_at} when {a_comp} came along.",
                "{The_comp} listened to the whole plan, then asked to come too.",
            ],
        ]
    )


def _party(cast: Cast, met: bool) -> str:
    # A storm or the moon keeps the hero company but does not walk beside them.
    walks = not cast.companion_known or _walks(cast)
    return "{Name}, with {the_comp} alongside," if met and walks else "{Name}"


def _journey(cast: Cast, rng: random.Random, met: bool) -> list[str]:
    party = _party(cast, met)
    return rng.choice(
        [
            [
                f"{party} set off {{travel}}, past {{detail1}} and {{detail2}}.",
                "By noon, home was far behind, and everything ahead was new."
                if cast.has_destination
                else "By noon, even the most familiar places looked new and strange.",
            ],
            [
                "The journey was longer than anyone had said.",
                f"{party} travelled {{travel}} from dawn until the first star came out.",
            ],
        ]
    )


def _trouble(cast: Cast, rng: random.Random) -> list[str]:
    if cast.other is not None and cast.other_category is Category.WEATHER:
        return ["Then {the_other} {wild}.", "{Name} held on tight {there_at} and wondered which way to go."]
    if cast.other is not None and cast.hostile:
        return rng.choice(
            [
                ["Suddenly {the_other} appeared {there_at}, {menace}.", "{Name} froze, and {their} heart beat fast."],
                ["Then came {the_other}, {menace}, right across the path {there_at}.", "There was no way around."],
            ]
        )
    return rng.choice(
        [
            ["Then {trouble}.", "{Name} held on tight {there_at} and wondered which way to go."],
            [
                "Without warning, {trouble}.",
                ("Far from home" if cast.has_destination else "Alone") + " {there_at}, {Name} felt very small.",
            ],
        ]
    )


def _darkest(cast: Cast, rng: random.Random) -> list[str]:
    return rng.choice(
        [
            [
                "That night, cold and "
                + ("far from home" if cast.has_destination else "tired")
                + ", {Name} sat beside a small lantern {there_at}.",
                "{They} wondered if {they} would ever {goal}.",
            ],
            [
                "Night fell, and the stars came out one by one over {there}.",
                "{Name} lay awake, missing home more than ever."
                if cast.has_destination
                else "{Name} lay awake, listening to the night.",
            ],
        ]
    )


def _turn(cast: Cast, rng: random.Random, met: bool) -> list[str]:
    if cast.other is not None and cast.hostile:
        return [
            "{Name} took a deep breath {there_at} and stepped toward {the_other}.",
            "Instead of running, {they} spoke gently, and {the_other} stopped to listen.",
        ]
    if cast.other is not None and cast.other_category is Category.WEATHER:
        return [
            "{Name} lit a lantern {there_at} and called out into {the_other}.",
            "Slowly it grew quieter, as if it had only wanted someone to listen.",
        ]
    if cast.other is not None and cast.other_category is Category.SKY:
        return [
            "Then {the_other} came out from behind the clouds and laid a silver path {there_at}.",
            "{Name} followed it, one careful step at a time.",
        ]
    if met:
        return [
            "It was {the_comp} who had the idea.",
            "Together they tried something nobody had ever tried {there_at}, and slowly it began to work.",
        ]
    return [
        "Then {Name} remembered an old saying: even a small light can change a long night.",
        "There {there_at}, {they} shone as brightly as {they} could and tried once more."
        if cast.hero.concept.key == "lantern"
        else "There {there_at}, {they} lifted a lantern high and tried once more.",
    ]


def _climax(cast: Cast) -> list[str]:
    return [
        "With one last brave push {there_at}, {Name} tried to {goal}.",
        "For a long moment nothing happened, and then everything did.",
    ]


def _resolution(cast: Cast, rng: random.Random, met: bool) -> list[str]:
    options = [["By sunset it was done: {Name} had managed to {goal}.", "{Home} had never looked so bright."]]
    if met:
        options.append(
            [
                "By sunset {Name} had managed to {goal}.",
                "{Name} watched the sky turn gold {there_at} with {the_comp}, and neither of them felt lonely again.",
            ]
        )
    if cast.has_destination:
        options.append(
            [
                "At dawn {Name} came home to {home}, tired and happy, having managed to {goal}.",
                "From that day on, {they} never stopped telling the tale.",
            ]
        )
    else:
        ending = "{they} hung {worn} by the door with a smile" if cast.hangs else "{they} could not stop smiling"
        options.append(
            ["The next morning {home} {home_was} calm and golden.", "{Name} had managed to {goal}, and " + ending + "."]
        )
    return rng.choice(options)


def _short_trouble(cast: Cast) -> str:
    """What goes wrong, in a few words: the prompt's own storm or rival when it has one."""
    if cast.other is not None and cast.other_category is Category.WEATHER:
        return "{the_other} grew wild"
    if cast.other is not None and cast.hostile:
        return "{the_other} appeared, {menace},"
    return "{trouble_short}"


def _whole(cast: Cast) -> list[str]:
    return [
        "{Name} was {intro} who lived {home_at} and wanted more than anything to {goal}.",
        "When " + _short_trouble(cast).rstrip(",") + ", {Name} kept going anyway.",
        "By sunset {they} had managed it, and {home} felt like home again.",
    ]


def _finale(cast: Cast) -> list[str]:
    return [
        "Then " + _short_trouble(cast).rstrip(",") + ", and for a while it seemed hopeless.",
        "But {Name} did not give up {there_at}, and by sunset {they} had managed to {goal}.",
    ]


def tell(cast: Cast, scene_count: int, rng: random.Random) -> list[str]:
    phases = arc_phases(scene_count)
    scenes: list[list[str]] = []
    met = cast.companion_known and "meeting" not in phases
    departs_later = "journey" in phases
    for phase in phases:
        if phase == "setup":
            beat = _setup(
                cast, rng, introduce="meeting" not in phases, depart=not departs_later and "meeting" not in phases
            )
        elif phase == "departure":
            leaving = "said goodbye to {home}" if cast.has_destination else "stepped out into the morning"
            beat = [
                "{Name} packed a bag with everything {they} might need: a lantern, a map and something to eat.",
                "Then {they} " + leaving + " and set off.",
            ]
        elif phase == "meeting":
            beat = _meeting(cast, rng, depart=not departs_later)
            met = met or not cast.hostile
        elif phase == "journey":
            beat = _journey(cast, rng, met)
        elif phase == "wonder":
            beat = [
                "On the way to {there}, {Name} came upon {wonder}.",
                "For a moment {Name} forgot every worry, and {the_comp} laughed out loud."
                if met
                else "For a moment {Name} forgot every worry and laughed out loud.",
            ]
        elif phase == "trouble":
            beat = _trouble(cast, rng)
        elif phase == "darkest":
            beat = _darkest(cast, rng)
        elif phase == "turn":
            beat = _turn(cast, rng, met)
        elif phase == "climax":
            beat = _climax(cast)
        elif phase == "resolution":
            beat = _resolution(cast, rng, met)
        elif phase == "finale":
            beat = _finale(cast)
        else:
            beat = _whole(cast)
        scenes.append(beat)
    return [" ".join(cap(sentence.format(**cast.fields)) for sentence in beat) for beat in scenes]
