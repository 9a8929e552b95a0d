"""The LM request paths ``rlm serve`` shares between its runs, so their HTTP connections are reused.

``rlm ask`` makes one :class:`~rlm_cli.lm.client.LMClient` per run, and with it one OpenAI SDK client
and one aiohttp connection pool, closed when the run ends. A server doing that for every request
opened a new TCP connection (and, with an ``https`` provider, a TLS handshake) to the provider per
request, and built and tore down an SDK client: ~4 ms of the event loop per request on loopback
(``bench/bench_serve.py --profile``). :class:`SharedPaths` is given to every run's client as its
``backend_override``: it picks the request path per model exactly as ``LMClient.backend_for`` does
(the OpenAI SDK for ``openai/`` models unless ``RLM_LM_BACKEND=litellm``, litellm otherwise) and
keeps one instance of each for the server's life. A run's ``aclose`` leaves them open; the server
closes them at shutdown (:meth:`SharedPaths.close`).

What runs share is only the connection pool to the provider (the SDK client is keyed by base URL and
key, as in one run): each run keeps its own limits, usage, cost, retries and semaphores (those live
in its ``LMClient``), and nothing of one request's messages is kept by a path between calls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class SharedPaths:
    """The request paths for ``backend`` (``auto`` or ``litellm``, as
    :func:`rlm_cli.lm.client.check_backend` accepts), made on first use and reused by every run.
    Use on one event loop (the SDK's HTTP client belongs to it)."""

    def __init__(self, backend: str = "auto") -> None:
        from rlm_cli.lm.client import check_backend

        self.backend = check_backend(backend)
        self._paths: dict[str, Any] = {}

    def path_for(self, model: str) -> Any:
        """The OpenAI SDK path for ``openai/`` models with ``backend`` ``auto``, litellm otherwise
        (``LMClient.backend_for``'s rule); one instance of each."""
        from rlm_cli.lm import backend_openai

        name = "openai" if self.backend == "auto" and backend_openai.handles(model) else "litellm"
        path = self._paths.get(name)
        if path is None:
            if name == "openai":
                path = backend_openai.OpenAIBackend()
            else:
                from rlm_cli.lm.backend_litellm import LitellmBackend

                path = LitellmBackend()
            self._paths[name] = path
        return path

    # --- what LMClient calls on a backend ----------------------------------------------------
    async def complete(self, kwargs: dict[str, Any]) -> tuple[str, Any]:
        return await self.path_for(kwargs["model"]).complete(kwargs)

    async def stream(self, kwargs: dict[str, Any], on_delta: Callable[[str], None]) -> tuple[str, Any]:
        return await self.path_for(kwargs["model"]).stream(kwargs, on_delta)

    def classify(self, exc: BaseException, model: str) -> Exception:
        return self.path_for(model).classify(exc, model)

    def cost(self, model: str, response: Any, usage: Any) -> float | None:
        return self.path_for(model).cost(model, response, usage)

    async def aclose(self) -> None:
        """A run ended: nothing is closed (the connections serve the next runs)."""

    async def close(self) -> None:
        """Close every path's HTTP clients (the server stops); the paths are made again if used."""
        paths, self._paths = list(self._paths.values()), {}
        for path in paths:
            await path.aclose()
