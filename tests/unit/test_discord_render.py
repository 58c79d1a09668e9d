"""The storyboard embed, scene captions and autocomplete choices stay within Discord's limits; edits are throttled."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.clock import FakeClock
from bot.domain import ImageStatus, Modality, Scene, Story, StoryStatus, VideoStatus
from bot.routing.catalog import ModelSpec
from bot.services.storyboards import Board
from cogs._publisher import nonce_for
from cogs._render import choice_name, model_choices, scene_caption, status_word, story_label, storyboard_embed
from cogs._storyboard import StoryboardUpdater

NOW = 1_800_000_000.0


def story(**fields: Any) -> Story:
    base: dict[str, Any] = {
        "prompt": "a fox who learns to fly",
        "text_model": "local-template",
        "image_model": "gpt-image-1.5",
        "video_model": "local-kenburns",
        "video_mode": True,
        "scene_count": 3,
        "created_at": NOW,
        "updated_at": NOW,
    }
    return Story(**{**base, **fields})


def scene(owner: Story, index: int, **fields: object) -> Scene:
    return Scene(story_id=owner.id, index=index, text=f"scene {index} " * 20, updated_at=NOW, **fields)  # type: ignore[arg-type]


def embed_size(data: Any) -> int:
    fields = sum(len(f["name"]) + len(f["value"]) for f in data.get("fields", []))
    return len(data.get("title", "")) + len(data.get("description", "")) + fields + len(data["footer"]["text"])


def test_storyboard_shows_each_stage_and_fallbacks() -> None:
    owner = story(status=StoryStatus.ILLUSTRATING, title="The Flying Fox")
    scenes = [
        scene(owner, 0, image_status=ImageStatus.COMPLETE, video_status=VideoStatus.COMPLETE,
              image_model_requested="gpt-image-1.5", image_model_used="local-sketch"),
        scene(owner, 1, image_status=ImageStatus.COMPLETE, video_status=VideoStatus.FAILED, video_error="it broke"),
        scene(owner, 2, image_status=ImageStatus.GENERATING),
    ]  # fmt: skip
    data = storyboard_embed(Board(owner, scenes)).to_dict()
    assert data["title"] == "📖 The Flying Fox"
    assert "Illustrating: drawn 2 of 3, animated 1 of 3, 1 failed" in data["description"]
    values = [f["value"].split("\n")[0] for f in data["fields"]]
    assert values == [
        "✅ done",
        "❌ failed: it broke",
        "🎨 drawing",
        "Scene 1 was drawn with local-sketch instead of gpt-image-1.5.",
    ]


def test_storyboard_of_a_queued_story_shows_its_place_in_line() -> None:
    data = storyboard_embed(Board(story(), [], queue_position=3)).to_dict()
    assert "Queued: number 3 in line" in data["description"]
    assert [f["value"] for f in data["fields"]] == ["⏳ waiting"] * 3


def test_storyboard_stays_within_embed_limits_for_ten_long_scenes() -> None:
    owner = story(prompt="p" * 1000, title="t" * 300, scene_count=10, status=StoryStatus.COMPLETE)
    scenes = [
        scene(owner, i, image_status=ImageStatus.FAILED, image_error="e" * 300).model_copy(update={"text": "x" * 3000})
        for i in range(10)
    ]
    data = storyboard_embed(Board(owner, scenes)).to_dict()
    assert len(data["title"]) <= 256 and len(data["description"]) <= 4096
    assert len(data["fields"]) <= 25 and all(len(f["value"]) <= 1024 for f in data["fields"])
    assert embed_size(data) <= 6000


def test_scene_caption_fits_2000_characters_and_keeps_the_note() -> None:
    owner = story()
    long_scene = scene(owner, 0).model_copy(update={"text": "word " * 1000})
    caption = scene_caption(long_scene, extra="❌ The picture could not be drawn: boom")
    assert len(caption) <= 2000
    assert caption.startswith("**Scene 1**\n") and caption.endswith("boom")


def spec(key: str, **fields: object) -> ModelSpec:
    return ModelSpec(key=key, provider="local", modality=Modality.IMAGE, **fields)  # type: ignore[arg-type]


def test_choices_are_filtered_capped_and_short() -> None:
    specs = [spec(f"model-{i:02d}", display_name=f"Painter {i}", tags=("refs", "x" * 90)) for i in range(30)]
    specs.append(spec("sketchy", display_name="Quick Sketch"))
    everything = model_choices(specs, "", lambda key: "closed")
    assert len(everything) == 25
    assert all(len(c.name) <= 100 and len(c.value) <= 100 for c in everything)
    assert [c.value for c in model_choices(specs, "  SKETCH ", lambda key: "open")] == ["sketchy"]
    assert [c.value for c in model_choices(specs, "painter 2", lambda key: "closed")] == [
        "model-02", "model-20", "model-21", "model-22", "model-23", "model-24", "model-25", "model-26",
        "model-27", "model-28", "model-29",
    ]  # fmt: skip
    assert choice_name(spec("sketchy", tags=("offline",)), "🔴") == "🔴 sketchy · Local · offline"


def test_nonce_is_stable_and_fits_discord() -> None:
    assert nonce_for("deliver:image:a:b") == nonce_for("deliver:image:a:b") != nonce_for("deliver:image:a:c")
    assert len(nonce_for("k" * 500)) == 25


async def test_storyboard_edits_are_coalesced_and_spaced() -> None:
    clock = FakeClock(NOW)
    edits: list[tuple[str, float]] = []
    gate = asyncio.Event()

    async def edit(story_id: str) -> None:
        edits.append((story_id, clock.now()))
        await gate.wait()

    updater = StoryboardUpdater(edit, clock, interval_s=2.0)
    updater.request("a")
    await asyncio.sleep(0)
    for _ in range(5):  # five updates while the first edit is in flight: one more edit, not five
        updater.request("a")
    updater.request("b")
    gate.set()
    await updater.drain()
    assert [e for e in edits if e[0] == "a"] == [("a", NOW), ("a", NOW + 2.0)]
    assert ("b", NOW) in edits
    assert updater.pending == 0


async def test_a_failing_edit_does_not_stop_later_ones() -> None:
    clock = FakeClock(NOW)
    calls: list[float] = []

    async def edit(story_id: str) -> None:
        calls.append(clock.now())
        if len(calls) == 1:
            raise RuntimeError("discord said no")

    updater = StoryboardUpdater(edit, clock, interval_s=1.0)
    updater.request("a")
    await updater.drain()
    updater.request("a")
    await updater.drain()
    assert calls == [NOW, NOW + 1.0]


def test_a_story_not_fully_posted_is_never_called_complete() -> None:
    done = story(status=StoryStatus.COMPLETE)
    parked = story(status=StoryStatus.COMPLETE, undelivered="I am missing the Send Messages permission in this channel")
    assert status_word(done) == "complete" and status_word(parked) == "undelivered"
    assert status_word(story(status=StoryStatus.FAILED, undelivered="x")) == "failed"
    board = storyboard_embed(Board(parked, [scene(parked, i, image_status=ImageStatus.COMPLETE) for i in range(3)]))
    data = board.to_dict()
    assert "Done, not all posted" in data["description"]
    [waiting] = [f for f in data["fields"] if f["name"] == "⚠️ Not posted yet"]
    assert waiting["value"].startswith("I am missing the Send Messages permission in this channel.")
    assert "Post again" in waiting["value"]


def test_messages_in_the_channel_name_their_story_with_its_markdown_escaped() -> None:
    assert story_label(story(title="The *Bold* Fox")) == "📖 **The \\*Bold\\* Fox** · "
    assert story_label(story(title=None)) == "📖 **A story** · "
    in_channel = story(delivery_note="The story's thread is locked, so the rest of it is posted in this channel.")
    notes = [f for f in storyboard_embed(Board(in_channel, [])).to_dict()["fields"] if f["name"] == "Notes"]
    assert notes and "thread is locked" in notes[0]["value"]
