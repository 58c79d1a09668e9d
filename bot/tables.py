"""Plain-text tables for the terminal (`storybot models`, `storybot status`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bot.registry import Registry


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)).rstrip()
             for row in (headers, *rows)]  # fmt: skip
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def format_models(registry: Registry) -> str:
    rows = []
    for spec in sorted(registry.specs(), key=lambda s: (s.modality.value, s.provider, s.key)):
        availability = registry.availability(spec.key)
        status = "available" if availability.usable else f"unavailable: {availability.reason}"
        rows.append((spec.key, spec.display_name, spec.provider, spec.modality.value, ", ".join(spec.tags), status))
    table = format_table(("key", "name", "provider", "modality", "capabilities", "status"), rows)
    aliases = registry.aliases
    if aliases:
        table += "\n\naliases: " + ", ".join(f"{old} -> {new}" for old, new in sorted(aliases.items()))
    return table


def format_queue(counts: Mapping[str, int]) -> str:
    order = ("queued", "running", "succeeded", "failed", "dead", "cancelled")
    return format_table(("status", "jobs"), [(name, str(counts.get(name, 0))) for name in order])
