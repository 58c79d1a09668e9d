"""The embedded illustrator (model ``local-sketch``): each scene drawn from what its text says.

local_scene reads the request (the hero and palette from the bible, the setting, subjects, time and
weather from the scene's text); this module lays the picture out, draws the scenery
(local_scenery), the figures (local_sprites), finishes it in the requested style (local_styles) and
captions it inside the bottom ``CAPTION_BAND`` of the picture.

Every choice comes from a ``random.Random`` seeded with sha256(seed, prompt), and Pillow writes no
timestamps into a PNG, so the same request always gives byte-identical bytes. The hero is drawn
from the bible alone, so it looks the same in every scene of a story.
"""

from __future__ import annotations

import asyncio
import bisect
import colorsys
import hashlib
import io
import logging
import random
import unicodedata
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from bot.errors import ErrorKind, ProviderError
from bot.providers.base import ImageRequest, ImageResult, ReferenceImage
from bot.providers.local.prompt import clean_prompt
from bot.providers.local.scene import HeroLook, ScenePlan, plan_scene
from bot.providers.local.scenery import CLIFF_TOP, WATER_FOREGROUND, Stage, draw_backdrop, draw_mist, draw_weather
from bot.providers.local.sprites import (
    BIRDS,
    QUADS,
    SWIMMERS,
    Pen,
    draw_bird,
    draw_creature,
    draw_landmark,
    draw_octopus,
    draw_person,
    draw_prop,
    draw_quad,
    draw_robot,
    draw_small_animal,
    draw_swimmer,
    draw_thing,
    sky_object,
)
from bot.providers.local.styles import INK, Style, style_for
from bot.providers.local.vocab import COLORS, CONCEPTS_BY_KEY, Category, Color, mix

__all__ = [
    "ASPECT_SIZES",
    "CAPTION_BAND",
    "LocalImageProvider",
    "Layout",
    "caption_text",
    "compose",
    "draw_caption",
    "render_image",
]

log = logging.getLogger(__name__)

ASPECT_SIZES: dict[str, tuple[int, int]] = {"16:9": (1024, 576), "1:1": (1024, 1024), "9:16": (576, 1024)}
DEFAULT_ASPECT = "16:9"
# The caption lives in the bottom CAPTION_BAND of the picture's height and draws nothing above it;
# the Ken Burns clip (local_video) keeps this band in view, and the scene keeps its hero above it.
CAPTION_BAND = 0.2
CAPTION_MAX_LINES = 4
CAPTION_MIN_FONT = 12
REFERENCE_TINT_WEIGHT = 0.2
PNG_COMPRESS_LEVEL = 4  # a little larger than the default 6, and noticeably faster to write
# Pillow's built-in font (Aileron) has ASCII plus these; anything else would draw as a box.
CAPTION_EXTRA_GLYPHS = frozenset("‘’“”…«»·°©±")

HERO_SIZE = 0.36  # of the picture's shorter side
PROP_SIZE = 0.13
HERO_SLOTS = (0.27, 0.35, 0.65, 0.73)
SKY_THINGS = frozenset({"moon", "planet", "rainbow", "aurora", "balloon", "kite", "star", "cloud"})
HANDHELD = frozenset({"lantern", "key", "map", "book", "umbrella", "crown", "bell", "egg", "teapot", "clock"})
LANDMARK_SIZE = {
    "lighthouse": 0.44,
    "castle": 0.42,
    "tower": 0.45,
    "windmill": 0.4,
    "pyramid": 0.4,
    "bridge": 0.3,
    "igloo": 0.2,
    "house": 0.3,
    "tent": 0.22,
}


@dataclass(frozen=True)
class Layout:
    """Where the figures went: the tests and the video's framing read the hero's box from it."""

    hero_box: tuple[int, int, int, int]
    facing: int
    companion_box: tuple[int, int, int, int] | None


class LocalImageProvider:
    """Procedural illustrations (model key ``local-sketch``)."""

    async def generate_image(self, request: ImageRequest) -> ImageResult:
        return await asyncio.to_thread(render_image, request)


def render_image(request: ImageRequest) -> ImageResult:
    warnings: list[str] = []
    size = ASPECT_SIZES.get(request.aspect_ratio)
    if size is None:
        warnings.append(f"aspect ratio {request.aspect_ratio!r} is not supported locally; drew {DEFAULT_ASPECT}")
        size = ASPECT_SIZES[DEFAULT_ASPECT]
    digest = hashlib.sha256(f"{request.seed}\x1f{request.prompt}".encode("utf-8", "surrogatepass")).digest()
    rng = random.Random(int.from_bytes(digest[:16], "big"))
    plan = plan_scene(request.prompt, request.scene_text)
    if request.references:
        plan = tinted(plan, reference_colors(request.references[0], request.model))
    style = style_for(plan.style)
    image, _ = compose(plan, size, rng, style)
    hero = plan.hero
    image = style.finish(image, rng, (hero.main, hero.accent, hero.hair, hero.skin, *plan.palette))
    draw_caption(image, caption_text(request.scene_text or plan_caption(request.prompt)))

    if style.palette_png:
        image = image.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return ImageResult(data=buffer.getvalue(), mime_type="image/png", request_id=digest[:8].hex(), warnings=warnings)


def plan_caption(prompt: str) -> str:
    """The scene's own words when the prompt carries them after "Scene N:", else the whole prompt."""
    marker = prompt.rfind("Scene ")
    if marker >= 0 and ":" in prompt[marker:]:
        return prompt[marker:].split(":", 1)[1]
    return prompt


def reference_colors(reference: ReferenceImage, model: str) -> tuple[Color, Color]:
    """The reference's average colour and its most saturated common colour."""
    try:
        with Image.open(io.BytesIO(reference.data)) as opened:
            opened.draft("RGB", (128, 128))  # JPEG decodes at a fraction of full size
            small = opened.convert("RGB")
            small.thumbnail((64, 64))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ProviderError(
            ErrorKind.BAD_REQUEST, f"the reference image could not be decoded: {exc}", model=model
        ) from exc
    average: Color = small.resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))  # type: ignore[assignment]
    quantized = small.quantize(colors=6)
    flat = quantized.getpalette() or []
    counts = sorted(quantized.getcolors() or [], reverse=True)
    swatches: list[Color] = [(flat[i * 3], flat[i * 3 + 1], flat[i * 3 + 2]) for _, i in counts if isinstance(i, int)]
    vivid = max(swatches or [average], key=lambda c: colorsys.rgb_to_hsv(*(v / 255 for v in c))[1])
    return average, vivid


def tinted(plan: ScenePlan, reference: tuple[Color, Color]) -> ScenePlan:
    """The scenery's palette leaned toward a reference picture's colours.

    The hero keeps the bible's colours: the reference for later scenes is scene 1's own picture, and
    letting its most vivid colour repaint the hero is what once turned a green hero navy.
    """
    average, vivid = reference
    a, b, c = plan.palette
    palette = (
        mix(a, vivid, REFERENCE_TINT_WEIGHT),
        mix(b, average, REFERENCE_TINT_WEIGHT),
        mix(c, average, REFERENCE_TINT_WEIGHT),
    )
    return ScenePlan(**{**plan.__dict__, "palette": palette})


# --- composition ----------------------------------------------------------------------------------


def compose(plan: ScenePlan, size: tuple[int, int], rng: random.Random, style: Style) -> tuple[Image.Image, Layout]:
    """The scene drawn before its style's finish and its caption."""
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image, "RGBA")
    outline: str | Color | None = None
    if style.outline:
        outline = INK if style.key == "ink" else "shade"
    stage = Stage(
        image,
        draw,
        rng,
        plan.palette,
        plan.time,
        plan.weather,
        outline,
        style.outline_width,
        style.banded_sky,
        style.glow,
    )
    stage.coarse = style.key == "pixel"
    width, height = size
    hero_x = width * rng.choice(HERO_SLOTS)
    facing = 1 if hero_x < width / 2 else -1
    far_x = width - hero_x + rng.uniform(-0.06, 0.06) * width
    far_x = min(max(far_x, width * 0.12), width * 0.88)
    stage.feature_x = far_x
    draw_backdrop(stage, plan.setting)

    for index, landmark in enumerate(plan.landmarks):
        x = far_x if index == 0 else width * 0.5
        landmark_height = stage.unit * LANDMARK_SIZE.get(landmark, 0.3)
        base = height * 0.6
        if landmark == "lighthouse" and plan.setting == "coast":
            base = height * (CLIFF_TOP + 0.015)
        draw_landmark(stage.pen(x, base, landmark_height), landmark, stage.env(plan.palette[0]), stage.night)

    taken = [hero_x, far_x]
    sky_things = [key for key in plan.subjects if key in SKY_THINGS]
    ground_things = [key for key in plan.subjects if key not in SKY_THINGS]
    for index, key in enumerate(sky_things):
        _sky_thing(stage, key, width * (0.2 + 0.6 * ((index + rng.random()) % 1)), plan)

    hero_size = stage.unit * HERO_SIZE
    swimmer_sea = plan.setting in WATER_FOREGROUND | {"coast", "island", "underwater"}
    for key in ground_things:
        if key in HANDHELD:
            # what the hero carries or uses stands at the hero's feet
            x, y, scale = hero_x + facing * hero_size * 0.42, stage.ground + hero_size * 0.02, 0.7
        else:
            x, y, scale = _free_slot(width, taken, rng), height * 0.7, 1.0
            taken.append(x)
        _figure(stage, key, x, y, hero_size * 0.5 * scale, -facing, plan, swimmer_sea)

    companion_box = None
    if plan.companion and plan.companion in CONCEPTS_BY_KEY:
        offset = 0.42 if plan.rival else 0.22
        x = min(max(hero_x + facing * offset * width, width * 0.08), width * 0.92)
        # a rival looms; a friend stands as tall as the hero, a small animal friend a little smaller
        scale = 0.95 if plan.rival else 0.85 if CONCEPTS_BY_KEY[plan.companion].category is Category.PERSON else 0.62
        pen = _figure(stage, plan.companion, x, stage.ground, hero_size * scale, -facing, plan, swimmer_sea)
        companion_box = pen.bounds if pen is not None else None

    draw_mist(stage, plan.setting)
    ground = stage.ground
    if stage.night and style.glow:
        # a little lantern light, so the hero reads against the dark
        glow = hero_size * 0.75
        for step in range(9, 0, -1):
            r = glow * (0.45 + step * 0.08)
            draw.ellipse(
                [hero_x - r, ground - hero_size * 0.5 - r, hero_x + r, ground - hero_size * 0.5 + r],
                fill=(255, 214, 140, 9 + (9 - step) * 3),
            )
    feet = _vehicle(stage, plan.vehicle, hero_x, ground, hero_size, facing, plan)
    if plan.vehicle is None or plan.vehicle in ("boat", "raft", "ship", "sled"):
        draw.ellipse(
            [hero_x - hero_size * 0.3, feet - hero_size * 0.03, hero_x + hero_size * 0.3, feet + hero_size * 0.03],
            fill=(0, 0, 0, 50),
        )
    if plan.airborne:
        feet -= hero_size * 0.85  # "had learned to fly": off the ground at last
    hero_pen = draw_hero(stage, plan.hero, hero_x, feet, hero_size, facing)
    draw_weather(stage, plan.setting, (hero_pen.box[0], hero_pen.box[2]))
    return image, Layout(hero_pen.bounds, facing, companion_box)


def _free_slot(width: int, taken: list[float], rng: random.Random) -> float:
    slots = [width * (0.08 + 0.84 * i / 11) for i in range(12)]
    free = [x for x in slots if all(abs(x - t) > width * 0.13 for t in taken)]
    return rng.choice(free or slots)


def draw_hero(stage: Stage, hero: HeroLook, x: float, feet: float, size: float, facing: int) -> Pen:
    kind = hero.kind
    if hero.category is Category.ANIMAL and kind in QUADS:
        pen = stage.pen(x - facing * size * 0.1, feet, size * 0.82, facing)
        draw_quad(pen, QUADS[kind], hero.main, hero.accent)
    elif hero.category is Category.ANIMAL:
        pen = stage.pen(x, feet, size * 0.85, facing)
        _animal(pen, kind, hero.main, hero.accent)
    elif hero.category is Category.ROBOT:
        pen = stage.pen(x, feet, size, facing)
        draw_robot(pen, hero.main, hero.accent)
    elif hero.category is Category.THING:
        pen = stage.pen(x, feet, size * 0.9, facing)
        draw_thing(pen, kind, hero.main, hero.accent, face=True)
    elif kind == "creature":
        pen = stage.pen(x, feet, size * 0.8, facing)
        draw_creature(pen, hero.main, hero.accent)
    else:
        pen = stage.pen(x, feet, size, facing)
        draw_person(pen, kind, hero.main, hero.accent, hero.hair, hero.skin)
    return pen


def _animal(pen: Pen, kind: str, main: Color, accent: Color | None) -> None:
    if kind in BIRDS:
        draw_bird(pen, kind, main, accent)
    elif kind in SWIMMERS:
        draw_swimmer(pen, kind, main, accent)
    elif kind == "octopus":
        draw_octopus(pen, main, accent)
    else:
        draw_small_animal(pen, kind, main, accent)


def _default_colors(key: str, plan: ScenePlan) -> tuple[Color, Color]:
    concept = CONCEPTS_BY_KEY[key]
    natural = [COLORS[c] for c in concept.colors if c in COLORS]
    main = natural[0] if natural else plan.palette[1]
    return main, plan.palette[0]


def _figure(
    stage: Stage, key: str, x: float, y: float, size: float, facing: int, plan: ScenePlan, swimmer_sea: bool
) -> Pen | None:
    """Anyone or anything besides the hero, in its natural colours."""
    concept = CONCEPTS_BY_KEY.get(key)
    if concept is None:
        return None
    main, accent = _default_colors(key, plan)
    category = concept.category
    if category is Category.ANIMAL:
        if key in SWIMMERS and swimmer_sea:
            y = stage.height * 0.62
            size *= 1.6 if key == "whale" else 1.0
        pen = stage.pen(x, y, size * (0.85 if key in QUADS else 0.9), facing)
        if key in QUADS:
            draw_quad(pen, QUADS[key], main, None)
        else:
            _animal(pen, key, main, None)
        return pen
    if category is Category.PERSON:
        pen = stage.pen(x, y, size, facing)
        coat = mix(plan.palette[1], (90, 90, 110), 0.3)
        draw_person(pen, key, coat, plan.palette[0], (90, 60, 40), (230, 190, 160))
        return pen
    if category is Category.ROBOT:
        pen = stage.pen(x, y, size, facing)
        draw_robot(pen, COLORS["silver"], plan.palette[0])
        return pen
    if category is Category.THING:
        pen = stage.pen(x, y, size * (0.8 if key not in ("tree", "train", "ship") else 1.3), facing)
        draw_thing(pen, key, main if concept.colors else plan.palette[0], accent, face=False)
        return pen
    if category is Category.PROP:
        pen = stage.pen(x, y, stage.unit * PROP_SIZE, facing)
        draw_prop(pen, key, plan.palette[0])
        return pen
    if category is Category.WEATHER:
        # weather the hero befriends is a character: a cloud with a face, up beside the hero
        pen = stage.pen(x, stage.height * 0.42, size * 1.1, facing)
        gloom = {"storm": (120, 124, 140), "rain": (170, 176, 190), "snow": (236, 240, 248)}.get(key, (226, 230, 238))
        draw_thing(pen, "cloud", gloom, plan.palette[0], face=True)
        return pen
    return None


def _sky_thing(stage: Stage, key: str, x: float, plan: ScenePlan) -> None:
    draw = stage.draw
    width, height = stage.width, stage.height
    if key == "rainbow":
        cx, cy, r = width * 0.5, height * 0.62, width * 0.42
        colors = [(230, 70, 60), (245, 150, 50), (250, 220, 70), (90, 180, 90), (70, 130, 220), (140, 90, 200)]
        band = max(4, round(stage.unit * 0.018))
        for i, color in enumerate(colors):
            rr = r - i * band
            draw.arc([cx - rr, cy - rr, cx + rr, cy + rr], 180, 360, fill=(*color, 170), width=band)
        return
    if key == "aurora":
        for i in range(3):
            y = height * (0.12 + i * 0.06)
            draw.ellipse([-width * 0.1, y, width * 1.1, y + height * 0.08], fill=(90, 240, 170, 60))
        return
    size = stage.unit * (0.2 if key in ("moon", "planet", "balloon") else 0.12)
    pen = stage.pen(x, height * 0.36, size, outline=key not in ("moon",))
    sky_object(pen, key, plan.palette[1] if key != "balloon" else plan.palette[0])


def _vehicle(
    stage: Stage, vehicle: str | None, x: float, ground: float, size: float, facing: int, plan: ScenePlan
) -> float:
    """Draws what the hero rides and returns where the hero's feet go."""
    if vehicle in ("boat", "raft", "ship"):
        water_y = ground + size * 0.05
        vessel = size * (1.15 if vehicle != "ship" else 1.4)
        pen = stage.pen(x, water_y, vessel, facing)
        main = plan.palette[0] if vehicle == "boat" else (140, 90, 50)
        draw_thing(pen, vehicle, main, plan.palette[1], face=False)
        # the hero stands on the deck, half hidden by the rail
        return water_y - vessel * (0.12 if vehicle == "raft" else 0.2)
    if vehicle == "sled":
        pen = stage.pen(x, ground + size * 0.04, size * 0.8, facing)
        draw_prop(pen, "sled", plan.palette[0])
        return ground - size * 0.14
    if vehicle in ("rocket", "train", "car"):
        side = x - facing * size * 0.75
        scale = {"rocket": 1.3, "train": 1.0, "car": 0.8}[vehicle]
        pen = stage.pen(side, ground - size * 0.02, size * scale, facing)
        draw_thing(
            pen, vehicle, plan.palette[0] if vehicle != "rocket" else COLORS["silver"], plan.palette[1], face=False
        )
    if vehicle == "balloon":
        pen = stage.pen(x + facing * stage.width * 0.25, stage.height * 0.42, stage.unit * 0.3, facing)
        sky_object(pen, "balloon", plan.palette[0])
    return ground


# --- the caption ----------------------------------------------------------------------------------


def caption_text(text: str) -> str:
    """The text the built-in font can draw: accents folded to ASCII, other unknown glyphs dropped."""
    folded = unicodedata.normalize("NFKD", clean_prompt(text))
    kept = "".join(ch for ch in folded if (" " <= ch <= "~") or ch in CAPTION_EXTRA_GLYPHS)
    return " ".join(kept.split())


def load_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (OSError, ImportError):  # a Pillow built without FreeType has only the tiny bitmap font
        return ImageFont.load_default()


def wrap_caption(
    text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, max_width: int, max_lines: int = CAPTION_MAX_LINES
) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in text.split():
        while font.getlength(word) > max_width and len(word) > 1:  # one enormous "word": hard-break it
            cut = max(
                1,
                bisect.bisect_right(range(len(word) + 1), float(max_width), key=lambda i: font.getlength(word[:i])) - 1,
            )
            if current:
                lines.append(current)
                current = ""
            lines.append(word[:cut])
            word = word[cut:]
        candidate = f"{current} {word}".strip()
        if font.getlength(candidate) <= max_width:
            current = candidate
        else:
            lines.append(current)
            current = word
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        last = lines[max_lines - 1]
        while last and font.getlength(last + " …") > max_width:
            last = last[:-1]
        lines = [*lines[: max_lines - 1], last.rstrip() + " …"]
    return lines


def caption_band_height(height: int) -> int:
    return round(height * CAPTION_BAND)


def draw_caption(image: Image.Image, text: str) -> None:
    """The caption in a dark band over the bottom CAPTION_BAND of the picture, and nowhere else.

    The text takes the largest size at which it fits the band whole; at the smallest size it is cut
    with an ellipsis instead of growing the band.
    """
    if not text:
        return
    width, height = image.size
    band = caption_band_height(height)
    size = max(CAPTION_MIN_FONT, min(width, height) // 24)
    while True:
        font = load_font(size)
        line_height = round(size * 1.28)
        margin = max(6, size * 2 // 3)
        room = max(1, (band - margin) // line_height)
        lines = wrap_caption(text, font, width - 2 * margin, max_lines=min(room, CAPTION_MAX_LINES))
        if size <= CAPTION_MIN_FONT or not lines[-1].endswith("…"):
            break
        size -= 1
    # Drawn on a band-sized layer, so not one pixel of the caption can land above the band.
    region = image.crop((0, height - band, width, height)).convert("RGBA")
    layer = Image.new("RGBA", region.size, (10, 12, 20, 165))
    draw = ImageDraw.Draw(layer)
    y = (band - line_height * len(lines)) // 2 + (line_height - size) // 4
    for line in lines:
        draw.text((margin + 1, y + 1), line, font=font, fill=(0, 0, 0, 200))
        draw.text((margin, y), line, font=font, fill=(255, 255, 250, 255))
        y += line_height
    image.paste(Image.alpha_composite(region, layer).convert("RGB"), (0, height - band))
