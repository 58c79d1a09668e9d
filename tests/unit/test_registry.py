from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.clock import FakeClock
from bot.domain import HealthState, Modality, RoutingConfig
from bot.errors import ConfigError, UnknownModelError, UserInputError
from bot.routing.catalog import BUILTIN_ALIASES, BUILTIN_SPECS
from bot.routing.registry import ModelSpec, Registry
from bot.settings import load_settings

TODAY = date(2026, 11, 21)
ALL_KEYS = {"OPENAI_API_KEY", "XAI_API_KEY", "GEMINI_API_KEY"}
KEY_ENV_VARS = ("OPENAI_API_KEY", "XAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "MODELS_FILE")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no developer .env
    for name in KEY_ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def clock_on(day: date) -> FakeClock:
    return FakeClock(datetime(day.year, day.month, day.day, 12, tzinfo=UTC).timestamp())


def builtin(keys: Iterable[str] = (), cooldown: Callable[[str], float | None] | None = None) -> Registry:
    """The built-in registry as of TODAY with the given key env vars set."""
    present = set(keys)
    return Registry(
        BUILTIN_SPECS, BUILTIN_ALIASES, key_present=lambda env: env in present, cooldown=cooldown, clock=clock_on(TODAY)
    )


def keys_of(specs: list[ModelSpec]) -> list[str]:
    return [spec.key for spec in specs]


# --- catalogue ---------------------------------------------------------------------------------


def test_builtin_catalogue_has_todays_models_per_modality() -> None:
    registry = builtin()
    assert set(keys_of(registry.specs(Modality.IMAGE))) >= {
        "gpt-image-1.5",
        "gpt-image-1-mini",
        "gemini-3.1-flash-image",
        "gemini-3-pro-image",
        "grok-imagine-image",
        "grok-imagine-image-2.0",
        "local-sketch",
    }
    assert set(keys_of(registry.specs(Modality.VIDEO))) >= {"grok-imagine-video", "grok-imagine-video-1.5"}
    assert set(keys_of(registry.specs(Modality.TEXT))) == {
        "gpt-5-mini",
        "gemini-3-flash",
        "grok-4-fast",
        "local-template",
    }
    assert len(registry.specs()) == sum(len(registry.specs(m)) for m in Modality)


def test_builtin_specs_carry_provider_keys_and_capabilities() -> None:
    registry = builtin()
    gpt = registry.resolve("gpt-image-1.5")
    assert (gpt.provider, gpt.api_key_env, gpt.api_model) == ("openai", "OPENAI_API_KEY", "gpt-image-1.5")
    assert gpt.supports_input_fidelity and gpt.max_reference_images == 16
    assert not registry.resolve("gpt-image-1-mini").supports_input_fidelity
    assert registry.resolve("gemini-3-pro-image").api_key_env == "GEMINI_API_KEY"
    assert registry.resolve("grok-imagine-image").max_reference_images == 3
    assert registry.resolve("grok-imagine-image-2.0").max_reference_images == 5
    sketch = registry.resolve("local-sketch")
    assert sketch.api_key_env is None and sketch.supports_references and sketch.max_reference_images == 1
    assert "offline" in sketch.tags
    assert registry.resolve("grok-imagine-video-1.5").durations_s == tuple(range(1, 16))
    assert registry.resolve("local-kenburns").durations_s == (3, 4, 5)


@pytest.mark.parametrize(
    ("key", "retired_on", "successor"),
    [
        ("grok-imagine-image-pro", date(2026, 5, 15), "grok-imagine-image-2.0"),
        ("grok-imagine-image-quality", date(2026, 11, 2), "grok-imagine-image-2.0"),
        ("dall-e-3", date(2026, 5, 12), "gpt-image-1.5"),
        ("sora-2", date(2026, 9, 24), "grok-imagine-video"),
        ("imagen-4.0-generate-001", date(2026, 8, 17), "gemini-3.1-flash-image"),
    ],
)
def test_retired_models_still_resolve_but_name_their_successor(key: str, retired_on: date, successor: str) -> None:
    registry = builtin(ALL_KEYS)
    spec = registry.resolve(key)
    assert (spec.retired_on, spec.successor) == (retired_on, successor)
    assert registry.resolve(successor).modality == spec.modality
    availability = registry.availability(key)
    assert not availability.usable
    assert availability.state is HealthState.RETIRED
    assert availability.reason == f"retired on {retired_on.isoformat()}; use {successor} instead"


# --- lookup ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("dalle", "gpt-image-1.5"),
        ("gpt-image-1", "gpt-image-1.5"),
        ("gemini-2.5-flash-image", "gemini-3.1-flash-image"),
    ],
)
def test_legacy_aliases_resolve_to_todays_model(alias: str, canonical: str) -> None:
    registry = builtin()
    assert registry.canonical(alias) == canonical
    assert registry.resolve(alias).key == canonical
    assert registry.get(alias) is registry.resolve(canonical)


def test_lookup_ignores_case_and_surrounding_whitespace() -> None:
    registry = builtin()
    assert registry.resolve("  GPT-Image-1.5\n").key == "gpt-image-1.5"
    assert registry.canonical(" DALLE ") == "gpt-image-1.5"
    assert registry.get("Local-Sketch").key == "local-sketch"


def test_get_returns_none_for_an_unknown_key() -> None:
    assert builtin().get("no-such-model") is None


def test_unknown_key_suggests_the_closest_one() -> None:
    with pytest.raises(UnknownModelError, match=r"^unknown model 'gpt-imag-1\.5'; did you mean 'gpt-image-1\.5'\?$"):
        builtin().resolve("gpt-imag-1.5")


def test_unknown_key_without_a_close_match_lists_known_keys_of_the_modality() -> None:
    with pytest.raises(UnknownModelError) as caught:
        builtin().resolve("zzzz", modality=Modality.VIDEO)
    message = str(caught.value)
    assert message.startswith("unknown model 'zzzz'; known video models: ")
    assert "grok-imagine-video" in message and "local-kenburns" in message
    assert "sora-2" not in message  # retired
    assert "local-sketch" not in message  # another modality


def test_canonical_of_an_unknown_key_raises() -> None:
    with pytest.raises(UnknownModelError):
        builtin().canonical("nope")


# --- availability ------------------------------------------------------------------------------


def test_models_without_their_key_are_unavailable_and_name_the_variable() -> None:
    registry = builtin()
    for key, env in [
        ("gpt-image-1.5", "OPENAI_API_KEY"),
        ("grok-4-fast", "XAI_API_KEY"),
        ("gemini-3-flash", "GEMINI_API_KEY"),
    ]:
        availability = registry.availability(key)
        assert not availability.usable
        assert availability.reason == f"no key set (set {env})"
        assert availability.state is HealthState.UNCONFIGURED


def test_local_models_need_no_key() -> None:
    registry = builtin()
    for key in ("local-sketch", "local-kenburns", "local-template"):
        assert registry.availability(key).usable


def test_availability_follows_settings_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", "g-key")
    registry = Registry.load(load_settings(openai_api_key="sk-test", xai_api_key="   "), clock=clock_on(TODAY))
    assert registry.availability("gpt-image-1.5").usable
    assert registry.availability("gemini-3.1-flash-image").usable  # GOOGLE_API_KEY counts for Gemini
    assert registry.availability("grok-imagine-image").reason == "no key set (set XAI_API_KEY)"  # blank key


def test_retirement_starts_on_the_retirement_day() -> None:
    registry = builtin(ALL_KEYS)
    assert registry.availability("grok-imagine-image-quality", today=date(2026, 11, 1)).usable
    assert not registry.availability("grok-imagine-image-quality", today=date(2026, 11, 2)).usable


def test_retired_comes_before_missing_key() -> None:
    assert builtin().availability("dall-e-3").state is HealthState.RETIRED


def test_cooldown_hook_marks_a_model_cooling_down() -> None:
    left = {"gpt-image-1.5": 41.2, "gpt-image-1-mini": 0.0}
    registry = builtin(ALL_KEYS, cooldown=left.get)
    availability = registry.availability("gpt-image-1.5")
    assert (availability.usable, availability.reason) == (False, "cooling down for 42 s")
    assert availability.state is HealthState.DOWN
    assert registry.availability("gpt-image-1-mini").usable
    assert registry.availability("gemini-3-pro-image").usable
    registry.set_cooldown_hook(None)
    assert registry.availability("gpt-image-1.5").usable


def test_availability_of_an_unknown_key_is_not_usable() -> None:
    availability = builtin(ALL_KEYS).availability("mystery")
    assert not availability.usable and availability.reason == "unknown model 'mystery'"


def test_registry_reads_today_from_its_clock() -> None:
    early = Registry(builtin().specs(), key_present=lambda env: True, clock=clock_on(date(2026, 5, 1)))
    assert early.availability("dall-e-3").usable
    assert not builtin(ALL_KEYS).availability("dall-e-3").usable


# --- usable ------------------------------------------------------------------------------------


def test_usable_without_keys_is_the_local_provider() -> None:
    registry = builtin()
    assert keys_of(registry.usable(Modality.IMAGE)) == ["local-sketch"]
    assert keys_of(registry.usable(Modality.VIDEO)) == ["local-kenburns"]
    assert keys_of(registry.usable(Modality.TEXT)) == ["local-template"]


def test_usable_with_all_keys_excludes_retired_models() -> None:
    usable = keys_of(builtin(ALL_KEYS).usable(Modality.IMAGE))
    assert usable == [
        "gpt-image-1.5",
        "gpt-image-1-mini",
        "gemini-3.1-flash-image",
        "gemini-3-pro-image",
        "grok-imagine-image",
        "grok-imagine-image-2.0",
        "local-sketch",
    ]


def test_usable_with_references_excludes_models_without_them() -> None:
    no_refs = ModelSpec(key="plain-draw", provider="local", modality=Modality.IMAGE)
    sketch = ModelSpec(
        key="ref-draw", provider="local", modality=Modality.IMAGE, supports_references=True, max_reference_images=2
    )
    registry = Registry([no_refs, sketch])
    assert keys_of(registry.usable(Modality.IMAGE)) == ["plain-draw", "ref-draw"]
    assert keys_of(registry.usable(Modality.IMAGE, needs_references=True)) == ["ref-draw"]
    assert builtin(ALL_KEYS).usable(Modality.TEXT, needs_references=True) == []


def test_usable_filters_video_by_duration() -> None:
    registry = builtin(ALL_KEYS)
    assert "local-kenburns" in keys_of(registry.usable(Modality.VIDEO, duration_s=4))
    assert keys_of(registry.usable(Modality.VIDEO, duration_s=12)) == ["grok-imagine-video", "grok-imagine-video-1.5"]
    assert registry.usable(Modality.VIDEO, duration_s=60) == []


# --- require_usable ----------------------------------------------------------------------------


def test_require_usable_returns_the_spec_for_an_alias() -> None:
    assert builtin(ALL_KEYS).require_usable("DALLE", Modality.IMAGE).key == "gpt-image-1.5"


def test_require_usable_unknown_suggests_and_lists_usable_models() -> None:
    with pytest.raises(UnknownModelError) as caught:
        builtin().require_usable("local-skech", Modality.IMAGE)
    assert (
        str(caught.value)
        == "unknown model 'local-skech'; did you mean 'local-sketch'? Usable image models: local-sketch"
    )


def test_require_usable_unknown_without_a_close_match() -> None:
    with pytest.raises(UnknownModelError, match=r"^unknown model 'qqq'; usable video models: local-kenburns$"):
        builtin().require_usable("qqq", Modality.VIDEO)


def test_require_usable_wrong_modality() -> None:
    with pytest.raises(UserInputError) as caught:
        builtin().require_usable("local-sketch", Modality.VIDEO)
    assert type(caught.value) is UserInputError
    assert (
        str(caught.value) == "'local-sketch' is an image model, not a video model; usable video models: local-kenburns"
    )


def test_require_usable_retired_names_the_successor() -> None:
    with pytest.raises(UserInputError) as caught:
        builtin({"XAI_API_KEY"}).require_usable("grok-imagine-image-pro", Modality.IMAGE)
    assert str(caught.value) == (
        "'grok-imagine-image-pro' is unavailable: retired on 2026-05-15; use grok-imagine-image-2.0 instead; "
        "usable image models: grok-imagine-image, grok-imagine-image-2.0, local-sketch"
    )


def test_require_usable_unconfigured_names_the_env_var() -> None:
    with pytest.raises(UserInputError) as caught:
        builtin().require_usable("gpt-image-1.5", Modality.IMAGE)
    message = str(caught.value)
    assert (
        message == "'gpt-image-1.5' is unavailable: no key set (set OPENAI_API_KEY); usable image models: local-sketch"
    )
    assert "\n" not in message


def test_require_usable_when_nothing_is_usable() -> None:
    registry = Registry([ModelSpec(key="only-remote", provider="xai", modality=Modality.IMAGE)])
    with pytest.raises(UserInputError, match="no image model is usable right now$"):
        registry.require_usable("only-remote", Modality.IMAGE)


# --- construction and specs --------------------------------------------------------------------


def test_spec_defaults_follow_the_provider() -> None:
    spec = ModelSpec(key=" My-Model ", provider="google", modality=Modality.TEXT)
    assert (spec.key, spec.display_name, spec.api_model, spec.api_key_env) == (
        "my-model",
        "my-model",
        "my-model",
        "GEMINI_API_KEY",
    )
    with pytest.raises(ValidationError):
        spec.key = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"provider": "local", "api_key_env": "OPENAI_API_KEY"}, "local model takes no api_key_env"),
        ({"api_key_env": "MY_SECRET"}, "api_key_env must be one of"),
        ({"supports_references": True}, "max_reference_images of at least 1"),
        ({"modality": Modality.VIDEO}, "needs durations_s"),
        ({"key": "bad key!"}, "may use only"),
        ({"successor": "x"}, "own successor"),
    ],
)
def test_inconsistent_specs_are_rejected(fields: dict[str, object], problem: str) -> None:
    base: dict[str, object] = {"key": "x", "provider": "openai", "modality": Modality.IMAGE}
    with pytest.raises(ValidationError, match=problem):
        ModelSpec.model_validate({**base, **fields})


def test_constructor_rejects_inconsistent_catalogues() -> None:
    a = ModelSpec(key="a", provider="local", modality=Modality.IMAGE)
    clip = ModelSpec(key="clip", provider="local", modality=Modality.VIDEO, durations_s=(3,))
    with pytest.raises(ConfigError, match="defined twice"):
        Registry([a, a])
    with pytest.raises(ConfigError, match="points to unknown model"):
        Registry([a], {"b": "nope"})
    with pytest.raises(ConfigError, match="hides the model"):
        Registry([a, clip], {"a": "clip"})
    with pytest.raises(ConfigError, match="successor"):
        Registry([a.model_copy(update={"successor": "clip"}), clip])


def test_successor_given_as_an_alias_is_made_canonical() -> None:
    old = ModelSpec(key="old", provider="local", modality=Modality.IMAGE, successor="nickname", retired_on=TODAY)
    new = ModelSpec(key="new", provider="local", modality=Modality.IMAGE)
    registry = Registry([old, new], {"nickname": "new"}, clock=clock_on(TODAY))
    assert registry.resolve("old").successor == "new"
    assert registry.availability("old").reason == "retired on 2026-11-21; use new instead"


def test_validate_routing() -> None:
    registry = builtin()
    registry.validate_routing(load_settings().routing)
    with pytest.raises(
        ConfigError, match=r"ROUTING__IMAGE__PRIMARY_MODEL: unknown model 'gpt-imag-1\.5'; did you mean"
    ):
        registry.validate_routing({Modality.IMAGE: RoutingConfig(primary_model="gpt-imag-1.5")})
    with pytest.raises(ConfigError, match="ROUTING__VIDEO__FALLBACKS: 'local-sketch' is an image model"):
        registry.validate_routing({Modality.VIDEO: RoutingConfig(primary_model="sora-2", fallbacks=["local-sketch"])})


# --- the operator's TOML file ------------------------------------------------------------------


def load_with_file(tmp_path: Path, text: str) -> Registry:
    path = tmp_path / "models.toml"
    path.write_text(text, encoding="utf-8")
    return Registry.load(load_settings(models_file=path, openai_api_key="sk-test"), clock=clock_on(TODAY))


def test_toml_overrides_only_the_given_fields(tmp_path: Path) -> None:
    registry = load_with_file(
        tmp_path,
        '[[models]]\nkey = "GPT-Image-1-Mini"\nretired_on = 2026-11-01\nsuccessor = "gpt-image-1.5"\n',
    )
    spec = registry.resolve("gpt-image-1-mini")
    assert (spec.retired_on, spec.successor) == (date(2026, 11, 1), "gpt-image-1.5")
    assert spec.display_name == "GPT Image 1 Mini" and spec.max_reference_images == 16
    assert registry.availability("gpt-image-1-mini").reason == "retired on 2026-11-01; use gpt-image-1.5 instead"


def test_toml_adds_models_and_aliases(tmp_path: Path) -> None:
    registry = load_with_file(
        tmp_path,
        """
[[models]]
key = "gpt-image-2"
provider = "openai"
modality = "image"
supports_references = true
max_reference_images = 16
aspect_ratios = ["1:1", "16:9"]
tags = ["refs", "hq"]

[aliases]
"House-Style" = "gpt-image-2"
""",
    )
    spec = registry.resolve("house-style")
    assert (spec.key, spec.api_key_env, spec.display_name, spec.aspect_ratios) == (
        "gpt-image-2",
        "OPENAI_API_KEY",
        "gpt-image-2",
        ("1:1", "16:9"),
    )
    assert "gpt-image-2" in keys_of(registry.usable(Modality.IMAGE, needs_references=True))
    assert registry.canonical("dalle") == "gpt-image-1.5"  # built-in aliases stay


def test_toml_provider_change_recomputes_the_key_variable(tmp_path: Path) -> None:
    registry = load_with_file(tmp_path, '[[models]]\nkey = "gpt-5-mini"\nprovider = "xai"\napi_model = "proxy-mini"\n')
    spec = registry.resolve("gpt-5-mini")
    assert (spec.provider, spec.api_key_env, spec.api_model) == ("xai", "XAI_API_KEY", "proxy-mini")


def test_toml_model_may_take_over_an_alias_name(tmp_path: Path) -> None:
    registry = load_with_file(tmp_path, '[[models]]\nkey = "dalle"\nprovider = "local"\nmodality = "image"\n')
    assert registry.resolve("dalle").key == "dalle"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[[models]\nkey = 1", "invalid TOML"),
        ('[model]\nkey = "x"', "unknown top-level key 'model'"),
        ('models = "x"', "must be an array of tables"),
        ("models = [1]", r"models\[0\] must be a table"),
        ('[[models]]\nprovider = "openai"', r"models\[0\] needs a string 'key'"),
        (
            '[[models]]\nkey = "x"\nprovider = "acme"\nmodality = "image"',
            r"models\[0\] \('x'\): provider: Input should be",
        ),
        (
            '[[models]]\nkey = "gpt-image-1.5"\ncolour = "red"',
            r"\('gpt-image-1\.5'\): colour: Extra inputs are not permitted",
        ),
        ('[[models]]\nkey = "x"\nprovider = "local"', r"\('x'\): modality: Field required"),
        ('[[models]]\nkey = "x"\nprovider = "local"\nmodality = "video"', "needs durations_s"),
        ('[[models]]\nkey = "a"\nprovider = "local"\nmodality = "text"\n' * 2, r"models\[1\]: model 'a' appears twice"),
        ('[[models]]\nkey = "dall-e-3"\nsuccessor = "sora-2"', "names 'sora-2' as successor, not a known image model"),
        ('[aliases]\nfoo = "nope"', "alias 'foo' points to unknown model 'nope'"),
        ("[aliases]\nfoo = 3", "alias 'foo' must map to a model key string"),
        ('aliases = ["x"]', "'aliases' must be a table"),
    ],
)
def test_toml_errors_name_the_file_and_the_problem(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_with_file(tmp_path, text)
    message = str(caught.value)
    assert message.startswith(f"models file {tmp_path / 'models.toml'}: ")
    assert "\n" not in message
    assert re.search(problem, message), message


def test_missing_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError, match=f"^models file {re.escape(str(path))}: not found$"):
        Registry.load(load_settings(models_file=path))


def test_unreadable_toml_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"^models file {re.escape(str(tmp_path))}: cannot read it"):
        Registry.load(load_settings(models_file=tmp_path))  # a directory
