"""The embedded illustrator: a procedural landscape drawn with Pillow, captioned with the scene.

Every choice comes from a ``random.Random`` seeded with sha256(seed, prompt), and Pillow writes
no timestamps into a PNG, so the same request always gives byte-identical bytes. When a
reference image is given, its colours tint the palette so later scenes echo the first.
"""

from __future__ import annotations

import asyncio
import bisect
import colorsys
import hashlib
import io
import logging
import math
import random
import unicodedata
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from bot.errors import ErrorKind, ProviderError
from bot.providers.base import ImageRequest, ImageResult, ReferenceImage
from bot.providers.local_text import clean_prompt

log = logging.getLogger(__name__)

Color = tuple[int, int, int]

ASPECT_SIZES: dict[str, tuple[int, int]] = {"16:9": (1024, 576), "1:1": (1024, 1024), "9:16": (576, 1024)}
DEFAULT_ASPECT = "16:9"
CAPTION_MAX_LINES = 4
REFERENCE_TINT_WEIGHT = 0.35
# Pillow's built-in font (Aileron) has ASCII plus these; anything else would draw as a box.
CAPTION_EXTRA_GLYPHS = frozenset("‘’“”…«»·°©±")

# (sky top, sky bottom, far hill, near hill, sun or moon, is night)
MOODS: list[tuple[Color, Color, Color, Color, Color, bool]] = [
    ((74, 144, 226), (190, 225, 250), (120, 170, 120), (52, 110, 62), (255, 236, 150), False),  # day
    ((250, 150, 110), (255, 215, 160), (170, 120, 140), (90, 70, 100), (255, 245, 210), False),  # dawn
    ((60, 40, 110), (240, 130, 90), (110, 70, 110), (45, 35, 70), (255, 190, 120), False),  # dusk
    ((12, 20, 52), (50, 70, 120), (40, 55, 90), (18, 26, 48), (235, 235, 215), True),  # night
]
CLOAKS: list[Color] = [(200, 50, 50), (240, 190, 40), (40, 150, 90), (60, 110, 220), (230, 110, 30), (150, 60, 180)]


@dataclass(frozen=True)
class Palette:
    sky_top: Color
    sky_bottom: Color
    far_hill: Color
    near_hill: Color
    light: Color
    cloak: Color
    night: bool


def mix(a: Color, b: Color, t: float) -> Color:
    return (round(a[0] + (b[0] - a[0]) * t), round(a[1] + (b[1] - a[1]) * t), round(a[2] + (b[2] - a[2]) * t))


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
    reference = reference_colors(request.references[0], request.model) if request.references else None
    palette = choose_palette(rng, reference)

    image = Image.new("RGB", size)
    draw_sky(image, palette)
    draw_sky_details(image, palette, rng)
    front_hill = draw_hills(image, palette, rng)
    draw_figure(image, palette, rng, front_hill)
    draw_caption(image, caption_text(request.scene_text or request.prompt))

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return ImageResult(data=buffer.getvalue(), mime_type="image/png", request_id=digest[:8].hex(), warnings=warnings)


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


def choose_palette(rng: random.Random, reference: tuple[Color, Color] | None) -> Palette:
    mood_index = rng.randrange(len(MOODS))
    cloak = rng.choice(CLOAKS)
    if reference is not None:
        average, cloak = reference
        # A dark reference keeps the night; a bright one never turns into night.
        brightness = sum(average) / 3
        mood_index = 3 if brightness < 70 else mood_index % 3
    sky_top, sky_bottom, far_hill, near_hill, light, night = MOODS[mood_index]
    if reference is not None:
        weight = REFERENCE_TINT_WEIGHT
        sky_top, sky_bottom = mix(sky_top, reference[0], weight), mix(sky_bottom, reference[0], weight)
        far_hill, near_hill = mix(far_hill, reference[0], weight), mix(near_hill, reference[0], weight / 2)
    return Palette(sky_top, sky_bottom, far_hill, near_hill, light, cloak, night)


def draw_sky(image: Image.Image, palette: Palette) -> None:
    draw = ImageDraw.Draw(image)
    width, height = image.size
    for y in range(height):
        draw.line([(0, y), (width, y)], fill=mix(palette.sky_top, palette.sky_bottom, y / max(height - 1, 1)))


def draw_sky_details(image: Image.Image, palette: Palette, rng: random.Random) -> None:
    """Stars or clouds, then a glowing sun or moon."""
    width, height = image.size
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    if palette.night:
        for _ in range(120):
            x, y, r = rng.randrange(width), rng.randrange(int(height * 0.6)), rng.choice((1, 1, 2))
            draw.ellipse([x - r, y - r, x + r, y + r], fill=(255, 255, 240, rng.randrange(120, 255)))
    else:
        for _ in range(rng.randrange(3, 7)):
            cx, cy = rng.randrange(width), rng.randrange(int(height * 0.05), int(height * 0.4))
            for _ in range(4):
                w, h = rng.randrange(40, 110), rng.randrange(18, 40)
                dx, dy = rng.randrange(-60, 60), rng.randrange(-12, 12)
                draw.ellipse([cx + dx - w, cy + dy - h, cx + dx + w, cy + dy + h], fill=(255, 255, 255, 110))
    radius = min(width, height) // 14
    cx, cy = rng.randrange(radius * 2, width - radius * 2), rng.randrange(radius * 2, int(height * 0.35))
    for step in range(12, 0, -1):  # ImageDraw replaces pixels, so inner rings carry the summed alpha
        glow = radius + step * radius // 6
        draw.ellipse([cx - glow, cy - glow, cx + glow, cy + glow], fill=(*palette.light, 6 * (13 - step)))
    draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=(*palette.light, 255))
    image.paste(Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB"))


def draw_hills(image: Image.Image, palette: Palette, rng: random.Random) -> list[tuple[int, int]]:
    """Three layers of rolling hills, far to near; returns the outline of the nearest."""
    width, height = image.size
    draw = ImageDraw.Draw(image)
    outline: list[tuple[int, int]] = []
    for layer in range(3):
        base = height * (0.55 + 0.1 * layer)
        amplitude = height * (0.06 - 0.012 * layer)
        freq1, freq2 = rng.uniform(1.0, 2.5), rng.uniform(3.0, 6.0)
        phase1, phase2 = rng.uniform(0, math.tau), rng.uniform(0, math.tau)
        outline = [
            (
                x,
                round(
                    base
                    + amplitude * math.sin(x / width * math.tau * freq1 / 2 + phase1)
                    + amplitude * 0.3 * math.sin(x / width * math.tau * freq2 / 2 + phase2)
                ),
            )
            for x in range(0, width + 8, 8)
        ]
        color = mix(mix(palette.far_hill, palette.near_hill, layer / 2), palette.sky_bottom, 0.35 * (2 - layer) / 2)
        draw.polygon([*outline, (width, height), (0, height)], fill=color)
        if layer == 1:
            draw_trees(draw, outline, mix(color, (0, 0, 0), 0.3), rng, height)
    return outline


def draw_trees(
    draw: ImageDraw.ImageDraw, outline: list[tuple[int, int]], color: Color, rng: random.Random, height: int
) -> None:
    for x, y in rng.sample(outline, min(len(outline), rng.randrange(4, 10))):
        tree_height = rng.randrange(height // 20, height // 9)
        half = tree_height // 3
        draw.polygon([(x, y - tree_height), (x - half, y + 2), (x + half, y + 2)], fill=color)


def draw_figure(image: Image.Image, palette: Palette, rng: random.Random, ground: list[tuple[int, int]]) -> None:
    """A small cloaked traveller standing on the nearest hill."""
    width, height = image.size
    x, ground_y = ground[rng.randrange(len(ground) // 4, 3 * len(ground) // 4)]
    ground_y = min(ground_y, int(height * 0.78))
    body = height // 7
    head = body // 5
    draw = ImageDraw.Draw(image)
    draw.ellipse(
        [x - body // 2, ground_y - 4, x + body // 2, ground_y + 6], fill=mix(palette.near_hill, (0, 0, 0), 0.4)
    )
    leg = (40, 34, 30)
    draw.line([(x - head // 2, ground_y - body // 3), (x - head // 2, ground_y)], fill=leg, width=max(2, head // 3))
    draw.line([(x + head // 2, ground_y - body // 3), (x + head // 2, ground_y)], fill=leg, width=max(2, head // 3))
    top = ground_y - body
    draw.polygon(
        [(x, top + head), (x - body // 3, ground_y - body // 4), (x + body // 3, ground_y - body // 4)],
        fill=palette.cloak,
    )
    draw.ellipse([x - head, top - head, x + head, top + head], fill=(241, 205, 170))
    draw.pieslice([x - head, top - head, x + head, top + head], 180, 360, fill=mix(palette.cloak, (0, 0, 0), 0.3))


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


def wrap_caption(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, max_width: int) -> list[str]:
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
    if len(lines) > CAPTION_MAX_LINES:
        last = lines[CAPTION_MAX_LINES - 1]
        while last and font.getlength(last + " …") > max_width:
            last = last[:-1]
        lines = [*lines[: CAPTION_MAX_LINES - 1], last.rstrip() + " …"]
    return lines


def draw_caption(image: Image.Image, text: str) -> None:
    if not text:
        return
    width, height = image.size
    font_size = max(16, min(width, height) // 24)
    font = load_font(font_size)
    margin = font_size
    lines = wrap_caption(text, font, width - 2 * margin)
    line_height = round(font_size * 1.3)
    band_height = line_height * len(lines) + margin
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    draw.rectangle([0, height - band_height, width, height], fill=(10, 12, 20, 150))
    y = height - band_height + margin // 2
    for line in lines:
        draw.text((margin + 1, y + 1), line, font=font, fill=(0, 0, 0, 200))
        draw.text((margin, y), line, font=font, fill=(255, 255, 250, 255))
        y += line_height
    image.paste(Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB"))
