"""The embedded illustrator (local-sketch): each picture draws its scene, keeps the hero, honours the style."""

from __future__ import annotations

import hashlib
import io
import math
import random

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageStat

from bot.providers.base import ImageRequest, ReferenceImage, StoryDraft, StoryRequest
from bot.providers.local.image import (
    ASPECT_SIZES,
    CAPTION_BAND,
    DEFAULT_ASPECT,
    compose,
    draw_caption,
    draw_hero,
    render_image,
)
from bot.providers.local.scene import plan_scene, read_hero
from bot.providers.local.scenery import BACKDROPS, Stage, draw_backdrop
from bot.providers.local.sprites import Pen, draw_landmark, draw_prop, draw_thing, sky_object
from bot.providers.local.styles import PAPER, STYLE_WORDS, resolve_style, style_for
from bot.providers.local.text import write_story_sync
from bot.providers.local.vocab import CONCEPTS, Category, Color, colors_in


def hero_box_for(request: ImageRequest) -> tuple[int, int, int, int]:
    """Where render_image draws ``request``'s hero (before the style's finish): the same plan, size and seed."""
    size = ASPECT_SIZES.get(request.aspect_ratio, ASPECT_SIZES[DEFAULT_ASPECT])
    digest = hashlib.sha256(f"{request.seed}\x1f{request.prompt}".encode("utf-8", "surrogatepass")).digest()
    plan = plan_scene(request.prompt, request.scene_text)
    _, layout = compose(plan, size, random.Random(int.from_bytes(digest[:16], "big")), style_for(plan.style))
    return layout.hero_box


STORIES = ["a lighthouse keeper befriends a storm", "a fox who learns to fly", "a tiny robot fixes the broken moon"]


def story(prompt: str, scenes: int = 4, style: str | None = None) -> StoryDraft:
    return write_story_sync(StoryRequest(model="local-template", prompt=prompt, scene_count=scenes, style=style))


def requests_for(draft: StoryDraft, style: str | None = None, aspect: str = "16:9") -> list[ImageRequest]:
    """One request per scene, shaped as bot.image_stage._image_prompt shapes them."""
    out = []
    for index, text in enumerate(draft.scenes):
        parts = [draft.bible, f"Style: {style}." if style else "", f"Scene {index + 1}: {text}"]
        prompt = "\n\n".join(part for part in parts if part)
        out.append(
            ImageRequest(
                model="local-sketch", prompt=prompt, scene_text=text, seed=f"story:{index}", aspect_ratio=aspect
            )
        )
    return out


def decode(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def near(a: Color, b: Color, within: float) -> bool:
    return math.dist(a, b) <= within


def share_near(image: Image.Image, box: tuple[int, int, int, int], color: Color, within: float = 40) -> float:
    """The fraction of the box's pixels within ``within`` of ``color``."""
    crop = image.crop(box)
    colors = crop.getcolors(crop.width * crop.height) or []
    close = sum(count for count, pixel in colors if near(pixel, color, within))
    return close / (crop.width * crop.height)


def picture_area(image: Image.Image) -> Image.Image:
    """The picture without its caption band."""
    return image.crop((0, 0, image.width, round(image.height * (1 - CAPTION_BAND))))


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(picture_area(a), picture_area(b))).mean) / 3


# --- the hero -------------------------------------------------------------------------------------


@pytest.mark.parametrize("prompt", STORIES)
@pytest.mark.parametrize("style", [None, "watercolour"])
def test_the_hero_keeps_the_bibles_colours_in_every_scene(prompt: str, style: str | None) -> None:
    draft = story(prompt, 4, style)
    first = draft.bible.split(". ")[0]
    main = colors_in(first.split(" is ", 1)[1])[0][1]  # the first colour the bible names: coat, fur, plates
    within = 40 if style is None else 60
    shares = []
    for request in requests_for(draft, style):
        image = decode(render_image(request).data)
        box = hero_box_for(request)
        assert box[3] <= image.height * (1 - CAPTION_BAND) + 2  # the hero stands above the caption
        shares.append(share_near(image, box, main, within))
    assert min(shares) >= 0.12, shares  # the bible's colour covers a good part of the hero in every scene
    assert max(shares) - min(shares) <= 0.25, shares  # and about the same part: the same figure each time


def test_the_hero_box_is_the_same_figure_across_scenes() -> None:
    boxes = [hero_box_for(request) for request in requests_for(story("a fox who learns to fly"))]
    sizes = {(right - left, bottom - top) for left, top, right, bottom in boxes}
    widths, heights = zip(*sizes, strict=True)
    assert max(widths) - min(widths) <= 4 and max(heights) - min(heights) <= 4


@pytest.mark.parametrize(
    ("prompt", "kind", "category"),
    [
        ("a fox who learns to fly", "fox", Category.ANIMAL),
        ("the knight who was scared of horses", "knight", Category.PERSON),
        ("a robot who wants to be a gardener", "robot", Category.ROBOT),
        ("a shy octopus opens a bakery", "octopus", Category.ANIMAL),
        ("a teapot who wanted to see the world", "teapot", Category.THING),
        ("Der kleine Drache", "dragon", Category.ANIMAL),
    ],
)
def test_the_hero_is_drawn_as_what_the_story_says(prompt: str, kind: str, category: Category) -> None:
    hero = read_hero(story(prompt).bible)
    assert (hero.kind, hero.category) == (kind, category)


def test_an_animal_hero_is_drawn_as_an_animal() -> None:
    fox = hero_box_for(requests_for(story("a fox who learns to fly"))[0])
    keeper = hero_box_for(requests_for(story("a lighthouse keeper befriends a storm"))[0])
    assert fox[2] - fox[0] > fox[3] - fox[1]  # four legs: longer than tall
    assert keeper[3] - keeper[1] > keeper[2] - keeper[0]  # a person: taller than wide


# --- what the scene says --------------------------------------------------------------------------


def plan_of(text: str, bible: str = "Mira is a girl in a red coat and a blue scarf, with black hair.") -> object:
    return plan_scene(f"{bible}\n\nScene 1: {text}", text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Then a storm rolled in, black and roaring, and lightning split the sky.", {"weather": "storm"}),
        ("The rain came down in grey sheets over the busy city.", {"weather": "rain", "setting": "city"}),
        ("One starry night in the deep forest, Mira woke up.", {"time": "night", "setting": "forest"}),
        ("By sunset the high mountains glowed.", {"time": "dusk", "setting": "mountains"}),
        ("One bright morning Mira set off.", {"time": "dawn"}),
        ("Snow fell on the snowy forest.", {"weather": "snow", "setting": "forest"}),
        ("Mira set off in a little boat across the waves.", {"setting": "sea", "vehicle": "boat"}),
        ("Mira lived at the old lighthouse.", {"setting": "coast", "landmarks": ("lighthouse",)}),
        ("Mira wanted more than anything to befriend the storm.", {"weather": None}),
        ("By sunset the storm had passed.", {"weather": None}),
        ("Mira held on tight on the moon.", {"setting": "space", "time": "night"}),
        ("They came upon a dragon asleep on a pile of gold in the old castle.", {"setting": "castle"}),
        ("Mira found a treasure chest and a map on the little island.", {"setting": "island"}),
        ("In the city deep under the sea lived an octopus.", {"setting": "underwater", "landmarks": ("tower",)}),
        ("In the old castle high in the clouds lived a knight.", {"setting": "sky", "landmarks": ("castle",)}),
        ("Mira put on her coral sweater in deep space.", {"setting": "space"}),  # a colour is not a reef
        ("By sunset Mira had managed to visit the city. The walled garden glowed.", {"setting": "garden"}),
    ],
)
def test_the_scene_text_sets_the_picture(text: str, expected: dict[str, object]) -> None:
    plan = plan_of(text)
    for field, value in expected.items():
        assert getattr(plan, field) == value, (field, plan)


def test_the_scene_names_what_is_drawn() -> None:
    plan = plan_of("Along the way Mira came upon a whale, a rainbow and a treasure chest on the open sea.")
    assert {"whale", "rainbow", "chest"} <= set(plan.subjects)  # type: ignore[attr-defined]
    robin = plan_scene("Robin is a boy in a red coat and a blue scarf.\n\nScene 1: Robin set off.", "Robin set off.")
    assert robin.subjects == ()  # the hero's name is not a bird


def test_time_and_weather_change_the_picture() -> None:
    bible = story("a fox who learns to fly").bible
    pictures = {}
    for text in (
        "One bright morning in the deep forest.",
        "That night in the deep forest.",
        "Then snow began to fall in the deep forest.",
    ):
        request = ImageRequest(model="m", prompt=f"{bible}\n\nScene 1: {text}", scene_text=text, seed="same")
        pictures[text] = decode(render_image(request).data)
    day, night, snow = pictures.values()
    assert (
        ImageStat.Stat(picture_area(night).convert("L")).mean[0]
        < ImageStat.Stat(picture_area(day).convert("L")).mean[0] - 30
    )  # noqa: E501
    assert mean_difference(day, snow) > 10


SUBJECT_CATEGORIES = {
    Category.SETTING,
    Category.LANDMARK,
    Category.PROP,
    Category.SKY,
    Category.ANIMAL,
    Category.THING,
    Category.ROBOT,
    Category.WEATHER,
}


def test_the_vocabulary_draws_at_least_forty_subjects_and_settings() -> None:
    drawable = [c for c in CONCEPTS if c.category in SUBJECT_CATEGORIES]
    assert len(drawable) >= 40
    required = {
        "sea",
        "lighthouse",
        "storm",
        "rain",
        "snow",
        "forest",
        "city",
        "castle",
        "desert",
        "mountains",
        "space",
        "river",
        "raft",
        "boat",
        "dragon",
        "robot",
        "fox",
        "cat",
    }
    assert required <= {c.key for c in CONCEPTS}
    for concept in CONCEPTS:
        if concept.category is Category.SETTING:
            assert concept.key in BACKDROPS


def blank_stage(size: tuple[int, int] = (320, 240)) -> Stage:
    image = Image.new("RGB", size, (128, 128, 128))
    return Stage(
        image,
        ImageDraw.Draw(image, "RGBA"),
        random.Random(1),
        ((200, 100, 70), (120, 130, 50), (230, 200, 150)),
        "day",
        None,
        "shade",
        2,
        banded=False,
        glow=True,
    )


def draws_something(paint: object) -> bool:
    stage = blank_stage()
    before = stage.image.copy()
    paint(stage)  # type: ignore[operator]
    return ImageChops.difference(before, stage.image).getbbox() is not None


@pytest.mark.parametrize(
    "concept", [c for c in CONCEPTS if c.category in SUBJECT_CATEGORIES - {Category.WEATHER}], ids=lambda c: c.key
)
def test_every_subject_has_a_drawing(concept: object) -> None:
    key = concept.key  # type: ignore[attr-defined]
    category = concept.category  # type: ignore[attr-defined]

    def paint(stage: Stage) -> None:
        pen = Pen(stage.draw, 160, 200, 120)
        if category is Category.SETTING:
            draw_backdrop(stage, key)
        elif category is Category.LANDMARK:
            draw_landmark(pen, key, (200, 60, 50), night=False)
        elif category is Category.PROP:
            draw_prop(pen, key, (200, 60, 50))
        elif category is Category.SKY and key in ("moon", "planet"):
            sky_object(pen, key, (200, 60, 50))
        elif category is Category.SKY:
            from bot.providers.local.image import _sky_thing

            _sky_thing(stage, key, 160, plan_of("Mira set off."))  # type: ignore[arg-type]
        elif category is Category.THING:
            draw_thing(pen, key, (200, 60, 50), (40, 90, 200), face=True)
        else:
            hero = read_hero(f"Pip is a {concept.noun} with red fur and a blue scarf.")  # type: ignore[attr-defined]
            assert hero.kind == key
            draw_hero(stage, hero, 160, 200, 120, 1)

    assert draws_something(paint)


# --- styles ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "style"),
    [
        ("watercolour", "watercolour"),
        ("aquarelle", "watercolour"),
        ("soft gouache", "watercolour"),
        ("watercolur", "watercolour"),
        ("ink", "ink"),
        ("comic book", "ink"),
        ("manga", "ink"),
        ("pencil sketch", "ink"),
        ("pixel art", "pixel"),
        ("8-bit", "pixel"),
        ("retro video game", "pixel"),
        ("poster", "poster"),
        ("flat vector", "poster"),
        ("bold flat-colour picture-book art", "poster"),
        ("warm storybook illustration", "storybook"),
        ("", "storybook"),
        ("zzz", "storybook"),
    ],
)
def test_a_style_name_maps_to_the_nearest_rendering(name: str, style: str) -> None:
    assert resolve_style(name) == style


def styled(style: str | None) -> Image.Image:
    return decode(render_image(requests_for(story("a lighthouse keeper befriends a storm"), style)[0]).data)


def hard_edges(image: Image.Image) -> float:
    """The share of pixels on a crisp edge (paper grain makes many faint ones, which do not count)."""
    edges = picture_area(image).convert("L").filter(ImageFilter.FIND_EDGES).point(lambda v: 255 if v > 48 else 0)
    return ImageStat.Stat(edges).mean[0] / 255


def test_each_style_visibly_changes_the_picture() -> None:
    plain = styled(None)
    pictures = {style: styled(style) for style in ("watercolour", "ink", "pixel art", "poster")}
    for style, picture in pictures.items():
        assert mean_difference(plain, picture) > 6, style
    for a in pictures:
        for b in pictures:
            if a < b:
                assert mean_difference(pictures[a], pictures[b]) > 6, (a, b)


def test_watercolour_is_soft_and_on_paper() -> None:
    assert hard_edges(styled("watercolour")) < hard_edges(styled(None)) * 0.5
    paper = picture_area(styled("watercolour")).convert("L").filter(ImageFilter.FIND_EDGES)
    assert ImageStat.Stat(paper).mean[0] > 1  # yet the paper's tooth shows everywhere


def test_ink_is_line_art() -> None:
    ink, plain = picture_area(styled("ink")), picture_area(styled(None))

    def dark(image: Image.Image) -> float:
        return share_near(image, (0, 0, image.width, image.height), (40, 40, 46), 60)

    assert dark(ink) > dark(plain) * 1.5
    saturation = lambda image: ImageStat.Stat(image.convert("HSV")).mean[1]  # noqa: E731
    assert saturation(ink) < saturation(plain)


def test_pixel_art_is_made_of_big_pixels() -> None:
    whole = styled("pixel art")
    pixel = whole.crop((0, 0, whole.width, whole.height * 3 // 4 // 8 * 8))  # whole 8-pixel rows above the caption
    blocky = pixel.resize((pixel.width // 8, pixel.height // 8), Image.Resampling.NEAREST).resize(
        pixel.size, Image.Resampling.NEAREST
    )
    assert mean_difference(pixel, blocky) < 1.0
    assert len(pixel.getcolors(1 << 16) or []) <= 32


def test_poster_is_flat_with_a_border() -> None:
    poster = styled("poster")
    assert near(poster.getpixel((2, 2)), PAPER, 10)  # type: ignore[arg-type]
    assert len(picture_area(poster).getcolors(1 << 18) or []) < len(picture_area(styled(None)).getcolors(1 << 18) or [])


def test_every_style_is_deterministic() -> None:
    for style in STYLE_WORDS:
        request = requests_for(story("a fox who learns to fly"), style)[1]
        assert render_image(request).data == render_image(request).data


# --- two stories, the caption, the reference ------------------------------------------------------


def test_different_prompts_give_visibly_different_pictures() -> None:
    pictures = [decode(render_image(requests_for(story(prompt))[0]).data) for prompt in STORIES]
    for i in range(len(pictures)):
        for j in range(i + 1, len(pictures)):
            assert mean_difference(pictures[i], pictures[j]) > 20


@pytest.mark.parametrize("aspect", list(ASPECT_SIZES))
def test_the_caption_stays_inside_its_band(aspect: str) -> None:
    assert CAPTION_BAND == 0.2
    width, height = ASPECT_SIZES[aspect]
    image = Image.new("RGB", (width, height), (90, 160, 90))
    before = image.copy()
    draw_caption(image, "A very long caption that goes on and on. " * 30)
    band_top = height - round(height * CAPTION_BAND)
    changed = ImageChops.difference(before, image).getbbox()
    assert changed is not None and changed[1] >= band_top  # nothing above the band changed
    assert changed == (0, band_top, width, height)  # and the band is the whole bottom fifth


def test_the_caption_fits_a_scene_whole() -> None:
    text = story("a lighthouse keeper befriends a storm").scenes[1]
    from bot.providers.local.image import caption_band_height, load_font, wrap_caption

    font = load_font(18)
    lines = wrap_caption(text, font, 1024 - 24, max_lines=(caption_band_height(576) - 12) // 23)
    assert not lines[-1].endswith("…")


def test_a_reference_tints_the_scenery_but_not_the_hero() -> None:
    draft = story("a lighthouse keeper befriends a storm")
    request = requests_for(draft)[1]
    buffer = io.BytesIO()
    Image.new("RGB", (64, 36), (30, 200, 60)).save(buffer, format="PNG")
    tinted = request.model_copy(update={"references": [ReferenceImage(data=buffer.getvalue())]})
    plain_image, tinted_image = decode(render_image(request).data), decode(render_image(tinted).data)
    assert mean_difference(plain_image, tinted_image) > 1
    box = hero_box_for(request)
    main = colors_in(draft.bible.split(" is ", 1)[1])[0][1]
    assert abs(share_near(plain_image, box, main) - share_near(tinted_image, box, main)) < 0.05
