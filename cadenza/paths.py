"""The user's paths, and the environment variables that move them, in one place.

    config file   CADENZA_CONFIG, else ~/.config/cadenza/config.toml
    cache         CADENZA_CACHE_DIR, else $XDG_CACHE_HOME/cadenza (~/.cache/cadenza): step results
    models        CADENZA_MODELS_DIR, else $XDG_CACHE_HOME/cadenza/models: assembled model files

Models are kept apart from the step cache, which is often per project or per test.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from .errors import InputError


def config_path() -> Path:
    return Path(os.environ.get("CADENZA_CONFIG") or Path.home() / ".config" / "cadenza" / "config.toml")


def load_config() -> dict[str, Any]:
    """The config file's settings ({} when there is none); a broken file is one clear error."""
    path = config_path()
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"config file {path}: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read config file {path}: {getattr(e, 'strerror', None) or e}") from None


def _xdg_cache() -> str:
    return os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")


def cache_dir() -> Path:
    """Cadenza's cache folder."""
    return Path(os.environ.get("CADENZA_CACHE_DIR") or os.path.join(_xdg_cache(), "cadenza"))


def step_cache_dir() -> Path:
    return cache_dir() / "steps"


def models_dir() -> Path:
    """Where assembled models live."""
    return Path(os.environ.get("CADENZA_MODELS_DIR") or os.path.join(_xdg_cache(), "cadenza", "models"))
