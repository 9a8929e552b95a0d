"""Where rlm keeps its files: ``RLM_HOME`` if set, else platformdirs' user directories for ``rlm``."""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "rlm"


def home_override() -> Path | None:
    """``$RLM_HOME`` as a path, or None."""
    value = os.environ.get("RLM_HOME")
    return Path(value).expanduser() if value else None


def log_dir() -> Path:
    """Directory of trajectory logs (``$RLM_HOME/logs`` or platformdirs' user log dir)."""
    home = home_override()
    if home is not None:
        return home / "logs"
    import platformdirs

    return Path(platformdirs.user_log_dir(APP_NAME, appauthor=False))


def config_dir() -> Path:
    """Directory of ``config.toml`` (``$RLM_HOME`` or platformdirs' user config dir)."""
    home = home_override()
    if home is not None:
        return home
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def cache_dir() -> Path:
    """Directory of caches such as cloned git remotes (``$RLM_HOME/cache`` or platformdirs' user cache dir)."""
    home = home_override()
    if home is not None:
        return home / "cache"
    import platformdirs

    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))


def data_dir() -> Path:
    """Directory of saved state (conversations, chat history): ``$RLM_HOME/data`` or platformdirs'
    user data dir."""
    home = home_override()
    if home is not None:
        return home / "data"
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
