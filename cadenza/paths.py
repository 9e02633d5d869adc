"""The user's paths, and the environment variables that move them, in one place.

    config file   CADENZA_CONFIG, else ~/.config/cadenza/config.toml
    cache         CADENZA_CACHE_DIR, else $XDG_CACHE_HOME/cadenza (~/.cache/cadenza): step results
    models        CADENZA_MODELS_DIR, else $XDG_CACHE_HOME/cadenza/models: assembled model files
    model paths   CADENZA_MODELS_DIR, MODEL_ENV_VARS and `model_dirs` in the config file: models
                  the user chose, which a tool argument (a model, a voice) may name by path
    workflows     CADENZA_WORKFLOWS (folders, separated by os.pathsep) and `workflow_dirs` in the
                  config file: folders whose workflow files become tools
    MCP servers   `[mcp_servers.NAME]` tables in the config file: servers whose tools become tools

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


# The variables that name a model the user chose: a name, or a path to a folder or file
MODEL_ENV_VARS = ("CADENZA_FASTER_WHISPER_MODEL", "CADENZA_OPENAI_WHISPER_MODEL", "CADENZA_HF_ASR_MODEL",
                  "CADENZA_HF_TTS_MODEL", "CADENZA_VISION_MODEL")


def config_folders(key: str) -> list[Path]:
    """The folders listed under `key` in the config file (a string or a list of strings; relative
    entries start at the config file's folder); anything else there is one clear error."""
    dirs = load_config().get(key, [])
    if isinstance(dirs, str):
        dirs = [dirs]
    if not isinstance(dirs, list) or not all(isinstance(d, str) for d in dirs):
        raise InputError(f"config file {config_path()}: {key} must be a list of folder paths")
    return [config_path().parent / Path(d).expanduser() for d in dirs]


def configured_model_paths() -> list[Path]:
    """The model folders and files the user configured, as real paths: CADENZA_MODELS_DIR, each of
    MODEL_ENV_VARS that holds a path, and `model_dirs = [...]` in the config file (relative entries
    start at the config file's folder). A tool argument that is a path may name these besides the
    run's allowed roots; nothing else outside them."""
    found = [Path(os.environ["CADENZA_MODELS_DIR"])] if os.environ.get("CADENZA_MODELS_DIR") else []
    found += [Path(v) for v in (os.environ.get(k, "") for k in MODEL_ENV_VARS) if looks_like_path(v)]
    found += config_folders("model_dirs")
    real = []
    for p in found:
        try:
            p = p.expanduser().resolve()
        except (OSError, RuntimeError):  # a symlink loop
            continue
        if p.exists():
            real.append(p)
    return real


def workflow_dirs() -> list[Path]:
    """The folders of workflow files the user registers as tools: CADENZA_WORKFLOWS (several
    separated by os.pathsep), then `workflow_dirs = [...]` in the config file (relative entries start
    at the config file's folder). A folder that does not exist is an error, not skipped: it is a typo."""
    found = [Path(v) for v in os.environ.get("CADENZA_WORKFLOWS", "").split(os.pathsep) if v.strip()]
    found += config_folders("workflow_dirs")
    out: list[Path] = []
    for p in found:
        p = p.expanduser()
        if not p.is_dir():
            raise InputError(f"workflow folder {p} (CADENZA_WORKFLOWS or workflow_dirs in {config_path()}) "
                             f"is not a folder")
        if p.resolve() not in out:
            out.append(p.resolve())
    return out


def mcp_servers() -> dict[str, dict[str, Any]]:
    """The external MCP servers of the config file, `[mcp_servers.NAME]` tables (a command or a URL:
    tools/mcp_client.py reads each one, so a bad table skips that server alone)."""
    servers = load_config().get("mcp_servers", {})
    if not isinstance(servers, dict) or not all(isinstance(v, dict) for v in servers.values()):
        raise InputError(f"config file {config_path()}: mcp_servers must hold tables, [mcp_servers.NAME]")
    return servers


def workflow_dirs_configured() -> bool:
    """Whether the user names any workflow folder (a config file that cannot be read counts: the
    plugin that reads it then says why)."""
    if os.environ.get("CADENZA_WORKFLOWS", "").strip():
        return True
    try:
        return bool(load_config().get("workflow_dirs"))
    except InputError:
        return True


def looks_like_path(value: str) -> bool:
    """True for text that names a path rather than a model or voice: it has a path separator or
    starts with '.' or '~' (a name that only happens to exist as a file is the caller's to check)."""
    return bool(value) and ("/" in value or os.sep in value or value.startswith((".", "~")))
