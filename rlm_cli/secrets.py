"""What counts as a secret in the environment: one rule for the REPL's environment filter and the
trajectory's redaction, so the two cannot drift apart."""

from __future__ import annotations

import re

SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH|COOKIE|SESSION", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    """True when an environment variable's name suggests it holds a key, token or password."""
    return SECRET_NAME.search(name) is not None
