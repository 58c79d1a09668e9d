"""The cogs are extensions: every public module in cogs/ is listed in bot/app.py and has ``async def setup(bot)``."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import discord
from discord.ext import commands

import cogs
from bot.app import EXTENSIONS


def test_every_public_cog_module_is_a_loaded_extension_with_a_setup() -> None:
    public = {f"cogs.{path.stem}" for path in Path(cogs.__file__).parent.glob("*.py") if not path.stem.startswith("_")}
    assert public == set(EXTENSIONS)
    for name in EXTENSIONS:
        assert inspect.iscoroutinefunction(importlib.import_module(name).setup), name


def test_the_app_leaves_the_extension_modules_to_load_extension() -> None:
    """load_extension runs a module anew: one the app (or a private helper) had imported would exist twice."""
    code = "import sys, bot.app; print(sorted(m for m in bot.app.EXTENSIONS if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.strip() == "[]"


async def test_the_errors_cog_answers_command_errors_only_while_it_is_loaded() -> None:
    bot = commands.Bot(command_prefix=commands.when_mentioned, intents=discord.Intents.none())
    default = bot.tree.on_error
    await bot.load_extension("cogs.errors")
    cog = bot.get_cog("ErrorsCog")  # load_extension runs the module anew: not the ErrorsCog class imported here
    assert cog is not None
    assert bot.tree.on_error == cog.on_app_command_error  # type: ignore[attr-defined]
    await bot.unload_extension("cogs.errors")
    assert bot.tree.on_error == default
