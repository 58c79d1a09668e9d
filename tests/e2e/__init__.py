"""End-to-end tests: the real discord.py client against the fake Discord."""

from __future__ import annotations

import warnings

# discord.py imports the deprecated ``audioop`` module, and warnings are errors in this suite. Importing it
# once here, with that one warning silenced, keeps collection working until pyproject.toml filters it.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="'audioop' is deprecated", category=DeprecationWarning)
    import discord  # noqa: F401
