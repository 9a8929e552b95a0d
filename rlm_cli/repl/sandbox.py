"""How the REPL child is launched: its environment, working directory and isolation.

FIRST VERSION: an allowlisted environment only. The sandbox issue hardens this (namespaces,
resource limits, network off).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

_SECRET = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH|COOKIE|SESSION", re.IGNORECASE)
_ALLOWED = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM", "PYTHONHASHSEED")


def child_environment(workdir: str) -> dict[str, str]:
    """The REPL child's environment: an allowlist, never anything that looks like a secret."""
    env = {k: v for k, v in os.environ.items() if k in _ALLOWED and not _SECRET.search(k)}
    env.update({"HOME": workdir, "TMPDIR": workdir, "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONIOENCODING": "utf-8"})
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    return env


@dataclass
class SandboxPlan:
    """The command prefix, environment and notices for launching one REPL child."""

    prefix: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)


def plan_sandbox(workdir: str) -> SandboxPlan:
    """Decide how to launch the child in ``workdir``."""
    return SandboxPlan(prefix=[], env=child_environment(workdir))
