"""``rlm serve``: the RLM behind an OpenAI-compatible HTTP API (aiohttp). Threat model: docs/serve.md.

Modules: ``config`` (the server's settings, the bind check, option parsing), ``guard`` (Host, Origin,
Content-Type and CORS: no web page may drive the server), ``listener`` (the accept loop: connection
cap, head deadline, EMFILE back-off), ``schema`` and ``protocol`` (validating a chat-completions
request with typed models; per-request budgets), ``spending`` (``--max-total-cost``), ``admission``
(bounds on running RLMs and the queue), ``answer`` (response_format, stop, max_tokens), ``replies``
(response and SSE chunk bodies), ``errors`` (OpenAI's error shape), ``handlers`` (the routes),
``app`` (middleware, the server's life and its graceful shutdown).
"""
