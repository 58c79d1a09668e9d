"""A story's progress as plain data, for the CLI's progress line and the Discord storyboard."""

from __future__ import annotations

from dataclasses import dataclass

from bot.domain import ImageStatus, Scene, Story, StoryStatus, VideoStatus

SCENE_STAGE_LABELS = {
    "waiting": "waiting",
    "drawing": "drawing",
    "animating": "animating",
    "done": "done",
    "failed": "failed",
}


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
