"""The Retry and Redraw buttons' custom_ids: within Discord's limits, and each routed to its own class."""

from __future__ import annotations

from bot.domain import new_id
from cogs._buttons import PostAgainButton, RedrawButton, RetryButton, redraw_view, retry_view


def test_custom_ids_carry_the_scene_and_fit_discords_limit() -> None:
    scene_id = new_id()
    for view, prefix in ((retry_view(scene_id), "storybot:retry:"), (redraw_view(scene_id), "storybot:redraw:")):
        [row] = view.to_components()
        [button] = row["components"]
        assert button["custom_id"] == prefix + scene_id and len(button["custom_id"]) <= 100
        assert not button.get("disabled")


def test_a_disabled_copy_keeps_its_custom_id() -> None:
    scene_id = new_id()
    [row] = retry_view(scene_id, disabled=True).to_components()
    [button] = row["components"]
    assert button["disabled"] is True and button["custom_id"] == f"storybot:retry:{scene_id}"


def test_each_template_takes_only_its_own_prefix_and_any_rest() -> None:
    retry, redraw = RetryButton.__discord_ui_compiled_template__, RedrawButton.__discord_ui_compiled_template__
    scene_id = new_id()
    assert (match := retry.fullmatch(f"storybot:retry:{scene_id}")) and match["key"] == scene_id
    assert (match := redraw.fullmatch(f"storybot:redraw:{scene_id}")) and match["key"] == scene_id
    assert (
        retry.fullmatch(f"storybot:redraw:{scene_id}") is None
        and redraw.fullmatch(f"storybot:retry:{scene_id}") is None
    )
    assert retry.fullmatch("storybot:retryX") is None and retry.fullmatch(f"xstorybot:retry:{scene_id}") is None
    # A forged rest still reaches the button, which answers it (SceneActions refuses it).
    assert (match := retry.fullmatch("storybot:retry:../x")) and match["key"] == "../x"
    post_again = PostAgainButton.__discord_ui_compiled_template__
    assert (match := post_again.fullmatch(f"storybot:repost:{scene_id}")) and match["key"] == scene_id
    assert post_again.fullmatch(f"storybot:retry:{scene_id}") is None and retry.fullmatch("storybot:repost:x") is None
