"""Provider adapters, built lazily per provider name from settings.

``text``, ``image`` and ``video`` hand out each adapter behind ``guard.GuardedProvider`` (a deadline per
call, every picture and clip checked before anyone stores it); ``adapter`` is the bare one, for the
health checks (which keep their own shorter deadline) and the local provider's housekeeping.
"""

from __future__ import annotations

from typing import Any

from bot.media.probe import MediaLimits
from bot.providers.base import ImageProvider, TextProvider, VideoProvider
from bot.providers.guard import GuardedProvider
from bot.routing.registry import Registry
from bot.settings import Settings


class ProviderSet:
    """One adapter instance per provider, created on first use."""

    def __init__(self, settings: Settings, registry: Registry, overrides: dict[str, Any] | None = None) -> None:
        self.settings = settings
        self.registry = registry
        self._adapters: dict[str, Any] = dict(overrides or {})
        self._guarded: dict[str, GuardedProvider] = {}
        self.limits = MediaLimits.from_settings(settings)

    def adapter(self, provider: str) -> Any:
        if provider not in self._adapters:
            self._adapters[provider] = self._build(provider)
        return self._adapters[provider]

    def text(self, provider: str) -> TextProvider:
        return self._typed(provider, TextProvider)

    def image(self, provider: str) -> ImageProvider:
        return self._typed(provider, ImageProvider)

    def video(self, provider: str) -> VideoProvider:
        return self._typed(provider, VideoProvider)

    def _typed(self, provider: str, protocol: type) -> Any:
        adapter = self.adapter(provider)
        if not isinstance(adapter, protocol):
            raise TypeError(f"the {provider} adapter does not implement {protocol.__name__}")
        guarded = self._guarded.get(provider)
        if guarded is None or guarded.adapter is not adapter:
            guarded = GuardedProvider(
                adapter, provider, deadline_s=self.settings.provider_timeout_s, limits=self.limits
            )
            self._guarded[provider] = guarded
        return guarded

    def _build(self, provider: str) -> Any:
        # Imported here so a bot that never uses a provider never imports its SDK.
        if provider == "local":
            from bot.providers.local.adapter import LocalProvider

            return LocalProvider(self.settings.media_dir / ".staging")
        if provider == "openai":
            from bot.providers.openai import OpenAIAdapter

            return OpenAIAdapter(self.settings, self.registry)
        if provider == "google":
            from bot.providers.google import GoogleAdapter

            return GoogleAdapter(self.settings, self.registry)
        if provider == "xai":
            from bot.providers.xai.adapter import XAIAdapter

            return XAIAdapter(self.settings, self.registry)
        raise LookupError(f"no adapter for provider {provider!r}")

    async def aclose(self) -> None:
        for adapter in self._adapters.values():
            close = getattr(adapter, "aclose", None)
            if close is not None:
                await close()
