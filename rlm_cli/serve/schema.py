"""The typed shape of a chat-completions body (pydantic, strict types, unknown fields forbidden).

:class:`ChatBody` lists every parameter ``rlm serve`` accepts; anything else is an
``extra_forbidden`` error that :func:`rlm_cli.serve.protocol.parse_chat` turns into a 400 naming
the parameter. The parameters that are accepted and ignored are listed in
:data:`rlm_cli.serve.protocol.IGNORED`; those refused with a reason in
:data:`rlm_cli.serve.protocol.UNSUPPORTED` are checked before this model.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rlm_cli.serve.protocol import MAX_MESSAGES, ROLES


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class TextPart(_Strict):
    """A content part: text only (images and audio are refused)."""

    type: Literal["text"]
    text: str


class Message(_Strict):
    """One message; ``name`` and ``tool_call_id`` are accepted and not used."""

    role: Literal[ROLES]  # type: ignore[valid-type]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_call_id: str | None = None


class StreamOptions(_Strict):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None  # accepted; chunks carry no obfuscation field


class JsonSchema(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Strict):
    """``{"type": "text"}``, ``{"type": "json_object"}`` or ``{"type": "json_schema", "json_schema": {...}}``."""

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchema | None = None

    def spec(self) -> dict | None:
        """What the answer must be: None for text, else ``{"type"}`` (json_object) or ``{"type",
        "name", "schema"}`` (json_schema; a missing ``json_schema`` object was refused at validation)."""
        if self.type == "text":
            return None
        if self.type == "json_object":
            return {"type": "json_object"}
        assert self.json_schema is not None
        return {"type": "json_schema", "name": self.json_schema.name, "schema": self.json_schema.schema_ or {}}

    def model_post_init(self, _context: Any) -> None:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("response_format of type json_schema needs its 'json_schema' object")
        if self.type != "json_schema" and self.json_schema is not None:
            raise ValueError("'json_schema' goes only with response_format type json_schema")


Number = float | int


class ChatBody(_Strict):
    """A chat-completions request as ``rlm serve`` accepts it."""

    model: str
    messages: Annotated[list[Message], Field(min_length=1, max_length=MAX_MESSAGES)]
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    stop: str | Annotated[list[str], Field(max_length=4)] | None = None
    response_format: ResponseFormat | None = None
    n: Literal[1] | None = None
    logprobs: Literal[False] | None = None
    rlm: Any = None  # the per-request budgets, checked by protocol.parse_budgets
    # accepted and ignored (protocol.IGNORED)
    temperature: Number | None = None
    top_p: Number | None = None
    presence_penalty: Number | None = None
    frequency_penalty: Number | None = None
    seed: int | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    service_tier: str | None = None
    reasoning_effort: str | None = None
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None
    verbosity: str | None = None
    # refused with a reason before validation (protocol.UNSUPPORTED) when set
    tools: Any = None
    tool_choice: Any = None
    functions: Any = None
    function_call: Any = None
    parallel_tool_calls: Any = None
    top_logprobs: Any = None
    logit_bias: Any = None
    audio: Any = None
    modalities: Any = None
    prediction: Any = None
    web_search_options: Any = None
