"""A story's progress as plain data, for the CLI's progress line and the Discord storyboard."""

from __future__ import annotations

from dataclasses import dataclass

from bot.domain import ImageStatus, Scene, Story, StoryStatus, VideoStatus


def scene_stage(story: Story, scene: Scene) -> str:
    if scene.image_status is ImageStatus.FAILED:
        return "failed"
    if scene.image_status is not ImageStatus.COMPLETE:
        return "drawing" if scene.image_status is ImageStatus.GENERATING else "waiting"
    if not story.video_mode or scene.video_status is VideoStatus.COMPLETE:
        return "done"
    if scene.video_status is VideoStatus.FAILED:
        return "failed"
    return "animating"


@dataclass(frozen=True)
class Progress:
    story_status: StoryStatus
    total: int
    drawn: int
    animated: int
    failed: int
    stages: tuple[str, ...]

    @property
    def finished(self) -> bool:
        return self.story_status in (StoryStatus.COMPLETE, StoryStatus.FAILED, StoryStatus.CANCELLED)

    def line(self, video: bool) -> str:
        if self.story_status in (StoryStatus.QUEUED, StoryStatus.WRITING):
            return f"[{self.story_status.value}] writing {self.total} scenes"
        text = f"[{self.story_status.value}] drawn {self.drawn} of {self.total}"
        if video:
            text += f", animated {self.animated} of {self.total}"
        if self.failed:
            text += f", {self.failed} failed"
        return text


def progress_of(story: Story, scenes: list[Scene]) -> Progress:
    stages = tuple(scene_stage(story, scene) for scene in scenes)
    return Progress(
        story_status=story.status,
        total=story.scene_count,
        drawn=sum(scene.image_status is ImageStatus.COMPLETE for scene in scenes),
        animated=sum(scene.video_status is VideoStatus.COMPLETE for scene in scenes),
        failed=stages.count("failed"),
        stages=stages,
    )


# -- how long until the story is finished -----------------------------------------------------------


ACTIVE = frozenset({StoryStatus.QUEUED, StoryStatus.WRITING, StoryStatus.ILLUSTRATING})
_VIDEO_SETTLED = frozenset({VideoStatus.COMPLETE, VideoStatus.FAILED})


@dataclass(frozen=True)
class Durations:
    """Seconds one job of each kind takes; the defaults are priors for a bot with no history yet."""

    text: float = 15.0
    image: float = 20.0
    clip: float = 90.0


@dataclass(frozen=True)
class WorkLeft:
    text: int = 0
    images: int = 0
    clips: int = 0

    @property
    def empty(self) -> bool:
        return not (self.text or self.images or self.clips)


def work_left(story: Story, scenes: list[Scene]) -> WorkLeft:
    """What this story still needs; before its scenes are written, every scene counts as still to do."""
    if story.status not in ACTIVE:
        return WorkLeft()
    if not scenes:
        clips = story.scene_count if story.video_mode else 0
        return WorkLeft(text=1, images=story.scene_count, clips=clips)
    images = sum(scene.image_status in (ImageStatus.PENDING, ImageStatus.GENERATING) for scene in scenes)
    clips = 0
    if story.video_mode:
        clips = sum(
            scene.image_status is not ImageStatus.FAILED and scene.video_status not in _VIDEO_SETTLED
            for scene in scenes
        )
    return WorkLeft(images=images, clips=clips)


def estimate_seconds(
    work: WorkLeft,
    *,
    jobs_ahead: int,
    workers: int,
    lanes: int,
    durations: Durations,
) -> float | None:
    """Seconds until ``work`` is done, or None when nothing is left.

    ``workers`` share the jobs ahead (counted as images, the commonest job); ``lanes`` is how many of
    this story's jobs run at once (the per-user limit caps it below ``workers``). The text comes first;
    images and clips then spread over the lanes, but never faster than one image then one clip in a row.
    """
    if work.empty:
        return None
    workers, lanes = max(workers, 1), max(min(lanes, workers), 1)
    waiting = max(jobs_ahead, 0) * durations.image / workers
    spread = (work.images * durations.image + work.clips * durations.clip) / lanes
    chain = (durations.image if work.images else 0.0) + (durations.clip if work.clips else 0.0)
    return waiting + work.text * durations.text + max(spread, chain)


def eta_text(seconds: float | None) -> str | None:
    """E.g. "about 40 s left", "about 2 min left", "about 3 h left"; None when there is nothing to say."""
    if seconds is None or seconds <= 0:
        return None
    if seconds < 55:
        return f"about {max(5, round(seconds / 5) * 5)} s left"
    minutes = seconds / 60
    if minutes < 90:
        return f"about {max(1, round(minutes))} min left"
    return f"about {round(minutes / 60)} h left"
