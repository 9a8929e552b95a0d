"""``rlm serve``: the RLM behind an OpenAI-compatible HTTP API (aiohttp).

Modules: ``config`` (the server's settings, the bind check), ``errors`` (OpenAI's error shape),
``protocol`` (validating a chat-completions request; per-request budgets), ``admission`` (bounds
on running RLMs and the queue), ``replies`` (response and SSE chunk bodies), ``handlers`` (the
routes), ``app`` (middlewares, the server's life and its graceful shutdown).
"""
