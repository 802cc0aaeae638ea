"""The tutor as an OpenAI-compatible chat model: `POST /v1/chat/completions` and `GET /v1/models`.

Chat front ends that speak the OpenAI API (Open WebUI, LibreChat, an IDE's assistant) then reach
the tutor as a model named `tutor` or `tutor:PRESET`. The answer's text carries its [n]
citations; the extra field `tutor` holds the whole JSON contract of /api/ask (sources,
per-sentence support, layer attribution), in the response and in the last streamed chunk, so a
plain client shows a normal answer and one that knows the field shows the layers.

Errors are the ones /api/ask gives, in OpenAI's shape (`{"error": {"message": ...}}`) so that
the OpenAI clients show the message. Sampling options (temperature, max_tokens, tools...) are
accepted and ignored: the tutor's settings decide them.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model
from starlette.concurrency import run_in_threadpool

from .answer import Answer, Answered, Explained, Token, Tutor, correction
from .config import PassageCount, json_integer
from .conversation import split_messages
from .errors import BusyError, IndexMissingError, TutorError
from .gate import Queued
from .prompts import NO_PRESET
from .records import Recorder
from .web.guard import request_user
from .web.schemas import HISTORY_LIMIT
from .web.sse import pumped

MODEL = "tutor"


class ChatMessageIn(BaseModel):
    """One message as OpenAI clients send it; other keys (name...) are ignored."""

    model_config = ConfigDict(extra="ignore")

    role: str = Field(max_length=32)
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class ChatFields(BaseModel):
    """The request; `chat_request_model` names this server's models. Unknown keys are OpenAI's
    other options, accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[ChatMessageIn]
    stream: bool = False
    stream_options: StreamOptions | None = None
    retrieval: bool = True
    k: int | None = None


def model_names(tutor: Tutor) -> list[str]:
    """`tutor` (the server's preset) and `tutor:NAME` for each preset and the neutral `none`."""
    return [MODEL, *(f"{MODEL}:{name}" for name in [*tutor.presets, NO_PRESET.name])]


def chat_request_model(models: list[str]) -> type[ChatFields]:
    """The request with this server's model names and the limits of /api/ask."""
    fields: dict[str, Any] = {
        "model": (Literal[tuple(models)], ...),
        # Every earlier turn is a user and an assistant message, then the question.
        "messages": (list[ChatMessageIn], Field(min_length=1, max_length=2 * HISTORY_LIMIT + 1)),
        "stream": (bool, Field(False, strict=True)),
        "retrieval": (bool, Field(True, strict=True)),
        # As /api/ask and MCP take them: JSON integers (2.0 is 2; "2" and true are refused).
        "k": (PassageCount, None),
        "n": (Annotated[Annotated[int, Field(ge=1, le=1)] | None, BeforeValidator(json_integer)], None),
    }
    return create_model("ChatCompletionRequest", __base__=ChatFields, **fields)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """OpenAI's error shape, so that its clients show the message."""
    kind = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status, headers)


def refusal(exc: TutorError) -> JSONResponse:
    """The status /api/ask gives the same error."""
    if isinstance(exc, BusyError):
        return error(503, str(exc), {"Retry-After": "30"})
    return error(503 if isinstance(exc, IndexMissingError) else 400, str(exc))


def invalid(exc: ValidationError) -> JSONResponse:
    """One line for a request that does not fit, worded as /api/ask words it."""
    problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in exc.errors()[:5])
    return error(422, f"invalid request: {problems}")


def _chunk(base: dict[str, Any], **fields: Any) -> str:
    return f"data: {json.dumps({**base, **fields}, ensure_ascii=False)}\n\n"


def usage(tutor: Tutor, answer: Answer) -> dict[str, int]:
    """Tokens of the prompt sent and of the answer generated (none when the model was not asked)."""
    prompt = sum(tutor.chat.count_tokens(m["content"]) for m in answer.prompt)
    completion = tutor.chat.count_tokens(answer.generated) if answer.generated else 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def openai_router(tutor: Tutor, recorder: Recorder) -> APIRouter:
    """The /v1 routes for one server (outside its OpenAPI spec: they follow OpenAI's)."""
    router = APIRouter(prefix="/v1", include_in_schema=False)
    models = model_names(tutor)
    request_model = chat_request_model(models)

    @router.get("/models")
    def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [_model(name) for name in models]}

    @router.get("/models/{name}")
    def get_model(name: str) -> Any:
        return _model(name) if name in models else error(404, f"no model {name[:100]!r}; the models are {models}")

    @router.post("/chat/completions")
    async def chat_completions(request: Request) -> Response:
        try:
            body = request_model.model_validate_json(await request.body())
        except ValidationError as exc:
            return invalid(exc)
        started, user = time.perf_counter(), request_user(request.headers)
        try:
            history, question = split_messages([(m.role, m.content) for m in body.messages], max_turns=HISTORY_LIMIT)
        except TutorError as exc:
            recorder.question_done("openai", started=started, error=exc, user=user)
            return refusal(exc)
        _, _, preset = body.model.partition(":")
        options: dict[str, Any] = {"preset": preset or None, "retrieval": body.retrieval, "k": body.k}
        front_end = "openai-stream" if body.stream else "openai"

        def done(**outcome: Any) -> None:
            recorder.question_done(front_end, started=started, user=user, question=question, **outcome)

        if not body.stream:
            try:
                answer = await run_in_threadpool(tutor.ask, question, history, **options)
            except TutorError as exc:
                done(error=exc)
                return refusal(exc)
            done(answer=answer.to_dict())
            return JSONResponse(_completion(body.model, answer, usage(tutor, answer)))
        stream = tutor.stream(question, history, explain=True, **options)
        try:
            first = await run_in_threadpool(next, stream)  # a bad question or a full line fails here
        except TutorError as exc:
            done(error=exc)
            return refusal(exc)
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        chunks = _chunks(tutor, body.model, itertools.chain((first,), stream), include_usage, done)
        return StreamingResponse(pumped(chunks), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    return router


def _model(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "tutor"}


def _completion(model: str, answer: Answer, counted: dict[str, int]) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer.answer},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": counted,
        "tutor": answer.to_dict(),
    }


def _chunks(
    tutor: Tutor, model: str, items: Iterator[Any], include_usage: bool, done: Callable[..., None]
) -> Iterator[str]:
    """OpenAI's chunks: the role, the text as it comes (and the corrected answer when a repair
    changed it), then a last chunk with `tutor` (after the attribution), the usage when asked for,
    and [DONE]. While the question waits for the model, SSE comments say how many are ahead
    (clients ignore comments)."""
    base = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk", "created": int(time.time())}
    base["model"] = model
    finished = False

    def content(text: str) -> str:
        return _chunk(base, choices=[{"index": 0, "delta": {"content": text}, "finish_reason": None}])

    try:
        yield _chunk(base, choices=[{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        answer, streamed = None, ""
        for event in items:
            match event:
                case Answered(answer=given) | Explained(answer=given):
                    # The text already shown stays in the client: a repair made after it follows it.
                    corrected = correction(streamed, given) if answer is None else ""
                    if corrected:
                        yield content(corrected)
                    answer = given
                case Queued(ahead=ahead):
                    yield f": queued, {ahead} ahead\n\n"
                case Token(text=text) if text:
                    streamed += text
                    yield content(text)
        assert answer is not None, "the answer stream ended without an Answer"
        final = _chunk(base, choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}], tutor=answer.to_dict())
        yield final
        if include_usage:
            yield _chunk(base, choices=[], usage=usage(tutor, answer))
        finished = True
        done(answer=answer.to_dict())
    except TutorError as exc:
        finished = True
        done(error=exc)
        yield _chunk({}, error={"message": str(exc), "type": "server_error", "code": 500})
    finally:
        if not finished:
            done(outcome="left")
    yield "data: [DONE]\n\n"
