"""Where rlm keeps its files: ``RLM_HOME`` if set, else platformdirs' user directories for ``rlm``."""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "rlm"


def home_override() -> Path | None:
    """``$RLM_HOME`` as a path, or None."""
    value = os.environ.get("RLM_HOME")
    return Path(value).expanduser() if value else None


def _user_dir(sub: str | None, platform_dir: str) -> Path:
    """``$RLM_HOME/<sub>`` (``$RLM_HOME`` itself for None) when set, else platformdirs' ``platform_dir``
    (e.g. ``"user_log_dir"``) for ``rlm``."""
    home = home_override()
    if home is not None:
        return home / sub if sub else home
    import platformdirs

    return Path(getattr(platformdirs, platform_dir)(APP_NAME, appauthor=False))


def log_dir() -> Path:
    """Directory of trajectory logs (``$RLM_HOME/logs`` or platformdirs' user log dir)."""
    return _user_dir("logs", "user_log_dir")


def config_dir() -> Path:
    """Directory of ``config.toml`` (``$RLM_HOME`` or platformdirs' user config dir)."""
    return _user_dir(None, "user_config_dir")


def cache_dir() -> Path:
    """Directory of caches such as cloned git remotes (``$RLM_HOME/cache`` or platformdirs' user cache dir)."""
    return _user_dir("cache", "user_cache_dir")


def data_dir() -> Path:
    """Directory of saved state (conversations, chat history): ``$RLM_HOME/data`` or platformdirs'
    user data dir."""
    return _user_dir("data", "user_data_dir")
