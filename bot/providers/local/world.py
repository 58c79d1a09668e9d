"""What the embedded writer knows about each kind of place: how to say it, what is there, what goes
wrong there and who lives there.

Each phrase names things the illustrator can draw (local_vocab), so a scene that says "a little boat
across the waves" gets a boat on the sea.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class World:
    prep: str  # "in" the forest, "on" the coast
    adjective: str  # "the deep forest": used when the prompt gave the place no adjective of its own
    noun: str
    details: tuple[str, str]  # two things to pass on the way
    travel: str  # how a journey there goes, after "set off"
    weather: str  # what goes wrong there when the prompt does not say
    goal: str  # a goal for a prompt that gives none
    companion: str  # a concept key: who a hero meets there
    native: str  # a concept key: the hero of a prompt that names only the place
    wonder: str  # something marvellous to come upon


WORLDS: dict[str, World] = {
    "meadow": World(
        "in", "green", "meadow", ("the rolling hills", "a field of flowers"), "along the path over the hills", "wind",
        "find the tallest tree on the hills", "rabbit", "rabbit", "a rainbow arching over the hills",
    ),
    "forest": World(
        "in", "deep", "forest", ("the tall pines", "a ring of mushrooms"), "along the winding forest path", "fog",
        "find the oldest tree in the forest", "owl", "fox", "a clearing full of glowing mushrooms",
    ),
    "jungle": World(
        "in", "steamy", "jungle", ("the giant leaves", "a roaring waterfall"), "through the tangled jungle", "rain",
        "find the hidden temple", "parrot", "monkey", "a parrot as bright as a rainbow",
    ),
    "sea": World(
        "on", "open", "sea", ("the rolling waves", "a pod of dolphins"), "in a little boat across the waves", "storm",
        "reach the island beyond the waves", "gull", "sailor", "a whale singing under the waves",
    ),
    "coast": World(
        "on", "windy", "coast", ("the tall cliffs", "the crashing waves"), "in a little boat across the bay", "storm",
        "reach the island beyond the waves", "gull", "sailor", "a lighthouse beam sweeping the sea",
    ),
    "island": World(
        "on", "little", "island", ("the palm trees", "the white sand"), "in a little boat around the island", "storm",
        "find the treasure buried on the island", "crab", "pirate", "a treasure chest half buried in the sand",
    ),
    "river": World(
        "by", "winding", "river", ("the reeds", "an old stone bridge"), "on a raft down the river", "rain",
        "follow the river all the way to the sea", "otter", "otter", "an otter juggling river stones",
    ),
    "lake": World(
        "by", "still", "lake", ("the lily pads", "the quiet reeds"), "in a little boat across the lake", "fog",
        "reach the island in the middle of the lake", "duck", "duck", "a family of ducks gliding by",
    ),
    "underwater": World(
        "in", "coral", "reef", ("the swaying seaweed", "the bright coral"), "through the swaying seaweed", "current",
        "find the lost pearl of the reef", "fish", "octopus", "a whale gliding overhead like a cloud",
    ),
    "city": World(
        "in", "busy", "city", ("the tall towers", "the glowing shop windows"), "through the busy streets", "rain",
        "find the lost bell of the city", "crow", "cat", "a rooftop garden full of lanterns",
    ),
    "village": World(
        "in", "little", "village", ("the crooked houses", "the old well"), "down the village lane", "snow",
        "find the village's missing bell", "cat", "girl", "a lantern festival in the village square",
    ),
    "castle": World(
        "in", "old", "castle", ("the high towers", "the silent great hall"), "up the long castle road", "storm",
        "find the crown hidden in the castle", "mouse", "knight", "a dragon asleep on a pile of gold",
    ),
    "desert": World(
        "in", "wide", "desert", ("the golden dunes", "a lonely cactus"), "across the golden dunes", "wind",
        "find the hidden oasis", "camel", "camel", "an oasis ringed with palm trees",
    ),
    "mountains": World(
        "in", "high", "mountains", ("the snowy peaks", "a narrow ledge"), "up the steep mountain trail", "snow",
        "reach the top of the highest peak", "eagle", "explorer", "an eagle circling the peaks",
    ),
    "volcano": World(
        "near", "smoking", "volcano", ("the black rocks", "the glowing cracks"), "up the rocky side of the volcano",
        "storm", "calm the grumbling volcano", "dragon", "explorer", "a river of glowing lava far below",
    ),
    "snowland": World(
        "in", "frozen", "north", ("the blue icebergs", "a lonely igloo"), "on a sled across the ice", "snow",
        "see the northern lights", "penguin", "polar_bear", "the northern lights dancing across the sky",
    ),
    "space": World(
        "in", "deep", "space", ("a ringed planet", "a drifting comet"), "in a small silver rocket", "night",
        "reach the little blue moon", "robot", "astronaut", "a ringed planet glowing like a lamp",
    ),
    "sky": World(
        "in", "open", "sky", ("the drifting clouds", "a flock of birds"), "in a patched hot air balloon", "wind",
        "touch the highest cloud in the sky", "bird", "bird", "a rainbow made of clouds",
    ),
    "cave": World(
        "in", "dark", "cave", ("the dripping rocks", "the glittering crystals"),
        "deeper into the cave with a lantern", "night", "find the crystal at the heart of the cave", "bat",
        "explorer", "a cavern of glowing crystals",
    ),
    "garden": World(
        "in", "walled", "garden", ("the flower beds", "the old apple tree"), "along the garden path", "rain",
        "grow the biggest flower in the garden", "snail", "hedgehog", "a butterfly as big as a hand",
    ),
    "farm": World(
        "on", "sleepy", "farm", ("the red barn", "the golden fields"), "along the farm track", "storm",
        "win the prize at the summer fair", "chicken", "pig", "a windmill turning in the sunset",
    ),
    "swamp": World(
        "in", "misty", "swamp", ("the crooked trees", "the bubbling pools"), "on a raft through the reeds", "fog",
        "find the crown that sank in the swamp", "frog", "frog", "a crowd of frogs singing together",
    ),
    "library": World(
        "in", "old", "library", ("the towering shelves", "the dusty books"), "between the towering shelves", "night",
        "find the book nobody had ever finished", "mouse", "teacher", "a book that glowed when it was opened",
    ),
    "room": World(
        "in", "cosy", "room", ("the warm stove", "the rainy window"), "to find the perfect spot", "storm",
        "make the room feel like home", "cat", "child", "a sunbeam full of dancing dust",
    ),
}  # fmt: skip

# A setting for each drawn concept that may stand for a place ("the lighthouse" -> on the coast).
LANDMARK_PLACES: dict[str, tuple[str, str]] = {
    # landmark: (preposition, adjective)
    "lighthouse": ("at", "old"),
    "castle": ("in", "old"),
    "tower": ("in", "tall"),
    "windmill": ("by", "old"),
    "pyramid": ("by", "great"),
    "bridge": ("by", "old"),
    "igloo": ("in", "little"),
    "house": ("in", "little"),
    "tent": ("in", "little"),
}

# What goes wrong, by weather: a full clause after "Then", and a short one for one-scene stories.
TROUBLES: dict[str, tuple[str, str]] = {
    "storm": ("a storm rolled in, black and roaring, and lightning split the sky", "a storm rolled in"),
    "rain": ("the rain came down in grey sheets, and every path turned to mud", "the rain came down in sheets"),
    "snow": ("snow began to fall, thick and silent, until every path vanished under white", "the snow came"),
    "fog": ("a thick fog crept in until nobody could see a step ahead", "a thick fog crept in"),
    "wind": ("a wild wind came howling and tugged at everything that was not tied down", "a wild wind blew"),
    "night": ("the lamps went out one by one, and a deep, dark night fell over everything", "night fell"),
    "current": ("a cold, dark current swept through and tumbled everything in its path", "a cold current swept in"),
}
# How an antagonist makes itself felt, by concept; anything else is "blocking the only way forward".
MENACE: dict[str, str] = {
    "dragon": "breathing smoke and sparks",
    "dinosaur": "stamping so hard the ground shook",
    "wolf": "growling low",
    "bear": "growling low",
    "shark": "circling in the water",
    "giant": "stomping and grumbling",
    "ghost": "wailing through the dark",
    "witch": "cackling over a bubbling pot",
    "pirate": "waving a rusty sword",
    "snake": "hissing softly",
    "storm": "howling and flashing",
    "night": "swallowing every light",
}
# The same troubles when the weather is a character the hero knows ("Then the storm ...").
WILD_WEATHER: dict[str, str] = {
    "storm": "grew wild and roaring, and lightning split the sky",
    "rain": "poured down in grey sheets until every path turned to mud",
    "snow": "swirled thick and silent until every path vanished under white",
    "fog": "wrapped everything in grey until nobody could see a step ahead",
    "wind": "howled and tugged at everything that was not tied down",
}
