"""The embedded illustrator's art styles: which one a request asks for, and what each does to a picture.

A style name from anyone (the user's ``--style``, the bible's "art style") maps to the nearest of five
renderings by keyword or synonym ("aquarelle" is watercolour, "8-bit" is pixel, "comic" is ink), then
by spelling ("watercolur"); nothing recognisable gets the storybook default. Each style sets how the
shapes are drawn (outlines, a banded or graded sky) and a finishing pass over the whole picture.
Every texture comes from a seeded ``random.Random``, never from Pillow's own noise, so the same
request stays byte-identical.
"""

from __future__ import annotations

import difflib
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from PIL import Image, ImageChops, ImageDraw, ImageEnhance, ImageFilter, ImageOps

from bot.providers.local.vocab import Color

DEFAULT_STYLE = "storybook"
PAPER = (247, 240, 224)
INK = (28, 26, 34)
FUZZY_CUTOFF = 0.8

STYLE_WORDS: dict[str, tuple[str, ...]] = {
    "watercolour": ("watercolour", "watercolours", "watercolor", "watercolors", "aquarelle", "acuarela", "aquarell",
                    "acquerello", "gouache", "pastel", "pastels", "painted", "painterly", "painting", "dreamy", "brush",
                    "brushstrokes", "impressionist", "wet", "soft"),
    "ink": ("ink", "line art", "lineart", "line-art", "pen", "comic", "comics", "manga", "sketch", "sketchy", "pencil",
            "etching", "woodcut", "engraving", "noir", "black and white", "b&w", "charcoal", "doodle",
            "graphic novel", "hatching", "linocut", "crosshatch", "outline", "outlines", "drawing"),
    "pixel": ("pixel", "pixels", "pixelated", "pixel art", "8-bit", "8 bit", "8bit", "16-bit", "16 bit", "16bit",
              "retro game", "video game", "videogame", "sprite", "sprites", "arcade", "nes", "snes", "gameboy",
              "game boy", "minecraft", "voxel", "low-res", "lowres", "mosaic", "retro"),
    "poster": ("poster", "flat", "flat-colour", "flat colour", "flat color", "vector", "minimal", "minimalist",
               "graphic", "bold", "screenprint", "screen print", "risograph", "riso", "pop art", "cutout",
               "paper cut", "papercut", "art deco", "propaganda", "mid-century", "geometric", "silhouette"),
    "storybook": ("storybook", "picture book", "picture-book", "children's", "childrens", "cartoon", "illustration",
                  "whimsical", "cute", "warm", "cozy", "cosy", "classic", "fairy tale", "fairytale", "default"),
}  # fmt: skip
_PATTERNS = [
    (re.compile(rf"(?<![\w-]){re.escape(word)}(?![\w-])", re.IGNORECASE), style, word)
    for style, words in STYLE_WORDS.items()
    for word in words
]
_SINGLE_WORDS = {word: style for style, words in STYLE_WORDS.items() for word in words if " " not in word}


def resolve_style(text: str | None) -> str:
    """The rendering nearest to ``text``: the earliest style word in it, else the closest spelling."""
    if not text:
        return DEFAULT_STYLE
    found = [(m.start(), -len(word), style) for pattern, style, word in _PATTERNS for m in [pattern.search(text)] if m]
    if found:
        return min(found)[2]
    for word in re.findall(r"[\w'&-]+", text.lower()):
        close = difflib.get_close_matches(word, list(_SINGLE_WORDS), n=1, cutoff=FUZZY_CUTOFF)
        if close and len(word) >= 4:
            return _SINGLE_WORDS[close[0]]
    return DEFAULT_STYLE


@dataclass(frozen=True)
class Style:
    key: str
    outline: bool  # dark edges around every shape
    outline_width: int
    banded_sky: bool  # flat bands instead of a smooth gradient
    glow: bool  # soft halo around the sun or moon
    # (picture, rng, the story's own colours) -> finished picture
    finish: Callable[[Image.Image, random.Random, Sequence[Color]], Image.Image]
    # Stored as a 256-colour PNG: a textured picture loses nothing visible and encodes five times faster.
    palette_png: bool = False


def _noise(size: tuple[int, int], rng: random.Random, low: int, high: int) -> Image.Image:
    """Greyscale noise between ``low`` and ``high``, from ``rng`` so it is the same every time."""
    raw = Image.frombytes("L", size, rng.randbytes(size[0] * size[1]))
    return raw.point(lambda v: low + (high - low) * v // 255)


def _storybook(image: Image.Image, rng: random.Random, keep: Sequence[Color]) -> Image.Image:
    return image


def _watercolour(image: Image.Image, rng: random.Random, keep: Sequence[Color]) -> Image.Image:
    """Soft edges, colour pooling at the edges, pigment blotches and the tooth of the paper."""
    width, height = image.size
    # The work happens at half size, which is also what softens every edge.
    half = image.reduce(2).filter(ImageFilter.BoxBlur(2))
    size = half.size
    pale = Image.blend(half, Image.new("RGB", size, PAPER), 0.18)
    edges = half.convert("L").filter(ImageFilter.FIND_EDGES).point(lambda v: 255 - min(105, v * 105 // 128))
    # Grain made at a quarter of the size and smoothed: fine white noise would look like static and
    # cost the PNG encoder ten times as much.
    blotches = _noise((max(1, width // 48), max(1, height // 48)), rng, 215, 255).resize(size, Image.Resampling.BICUBIC)
    grain = _noise((width // 4, height // 4), rng, 232, 255).resize(size, Image.Resampling.BILINEAR)
    paper = ImageChops.multiply(ImageChops.multiply(blotches, grain), edges)
    return ImageChops.multiply(pale, Image.merge("RGB", (paper, paper, paper))).resize(
        (width, height), Image.Resampling.BILINEAR
    )


def _ink(image: Image.Image, rng: random.Random, keep: Sequence[Color]) -> Image.Image:
    """Ink lines over a pale wash on paper, like a pen drawing coloured in lightly."""
    width, height = image.size
    half = image.convert("L").resize((width // 2, height // 2), Image.Resampling.BILINEAR)
    lines = half.filter(ImageFilter.FIND_EDGES).point(lambda v: 0 if v > 18 else 255)
    lines = lines.resize((width, height), Image.Resampling.BILINEAR).point(lambda v: 40 + v * 215 // 255)
    wash = Image.blend(image, Image.new("RGB", image.size, PAPER), 0.5)
    return ImageChops.multiply(wash, Image.merge("RGB", (lines, lines, lines)))


PIXEL_SIZE = 8
PIXEL_COLORS = 20


def _pixel(image: Image.Image, rng: random.Random, keep: Sequence[Color]) -> Image.Image:
    """Big square pixels from a small palette, like an old game."""
    width, height = image.size
    small = image.resize((width // PIXEL_SIZE, height // PIXEL_SIZE), Image.Resampling.BOX)
    # The picture's own few colours plus the story's (the hero's and the palette's): with only the
    # picture's own, a brown hedgehog would come out grey in a night scene and brown by day.
    fitted = small.quantize(PIXEL_COLORS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    flat = fitted.getpalette() or []
    own = [(flat[i], flat[i + 1], flat[i + 2]) for i in range(0, min(len(flat), PIXEL_COLORS * 3), 3)]
    colors = list(dict.fromkeys([*keep, *own]))
    palette = Image.new("P", (1, 1))
    palette.putpalette([channel for color in colors for channel in color])
    few = small.quantize(palette=palette, dither=Image.Dither.NONE).convert("RGB")
    return few.resize((width, height), Image.Resampling.NEAREST)


POSTER_BORDER = 0.025


def _poster(image: Image.Image, rng: random.Random, keep: Sequence[Color]) -> Image.Image:
    """Flat, saturated colour with few tones and a printed border."""
    bold = ImageOps.posterize(ImageEnhance.Color(image).enhance(1.35), 3)
    draw = ImageDraw.Draw(bold)
    width, height = bold.size
    border = max(4, round(min(width, height) * POSTER_BORDER))
    draw.rectangle([0, 0, width - 1, height - 1], outline=PAPER, width=border)
    draw.rectangle([border, border, width - 1 - border, height - 1 - border], outline=INK, width=max(2, border // 4))
    return bold


STYLE_TABLE: dict[str, Style] = {
    "storybook": Style("storybook", outline=True, outline_width=2, banded_sky=False, glow=True, finish=_storybook),
    "watercolour": Style("watercolour", outline=False, outline_width=0, banded_sky=False, glow=True,
                         finish=_watercolour, palette_png=True),
    "ink": Style("ink", outline=True, outline_width=3, banded_sky=False, glow=False, finish=_ink, palette_png=True),
    "pixel": Style("pixel", outline=False, outline_width=0, banded_sky=False, glow=False, finish=_pixel,
                   palette_png=True),
    "poster": Style("poster", outline=False, outline_width=0, banded_sky=True, glow=False, finish=_poster),
}  # fmt: skip


def style_for(key: str) -> Style:
    return STYLE_TABLE.get(key, STYLE_TABLE[DEFAULT_STYLE])
