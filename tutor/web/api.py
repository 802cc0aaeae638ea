"""The JSON API under /api: a thin front end on `Tutor`.

`POST /api/ask` returns the answer's JSON contract (tutor.contract), `POST /api/ask/stream` the
same as server-sent events (`queued`, `token`, `answer`, then `attribution`), `GET /api/history`
the signed-in user's earlier answers. Refusals are the app's (tutor.web.app).
"""

# No `from __future__ import annotations` here: FastAPI reads the routes' annotations at runtime,
# and the request model is built per server (its limits and preset names come from the settings).
import asyncio
import itertools
import threading
import time
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from ..answer import Answer, Answered, Explained, Token, Tutor
from ..contract import AnswerModel
from ..errors import TutorError
from ..gate import Queued
from ..records import Recorder
from .guard import request_user
from .schemas import REFUSALS, AskFields, ask_options
from .sse import pumped, sse_event, until_gone

CLIENT_LEFT = 499  # the status logged for a request whose client closed the connection first (nginx's)


def api_router(tutor: Tutor, recorder: Recorder, ask_body: type[AskFields]) -> APIRouter:
    """The routes of the JSON API, taking `ask_body` (this server's request model, see ask_request_model)."""
    router = APIRouter()

    async def ask(body: AskFields, request: Request) -> Any:
        """The whole answer with its sources and layer attribution (the JSON contract)."""
        started, user = time.perf_counter(), request_user(request.headers)
        # Answered in a thread of its own that stops, giving up its place at the model, when the
        # client leaves: a JSON request would otherwise be answered to the end for nobody.
        gone = threading.Event()
        watch = asyncio.create_task(until_gone(request, gone))
        answer: Answer | None = None
        try:
            async for event in pumped(
                tutor.stream(body.question, body.history, explain=True, **ask_options(body)), gone
            ):
                if isinstance(event, Answered | Explained):
                    answer = event.answer
        except TutorError as exc:
            recorder.question_done("api", started=started, error=exc, user=user, question=body.question)
            raise
        finally:
            watch.cancel()
        if gone.is_set() or answer is None:
            recorder.question_done("api", started=started, outcome="left", user=user, question=body.question)
            return Response(status_code=CLIENT_LEFT)
        done = answer.to_dict()
        recorder.question_done("api", started=started, answer=done, user=user, question=body.question)
        return done

    def ask_stream(body: AskFields, request: Request) -> StreamingResponse:
        """Server-sent events: `queued` while waiting, `token` pieces, the `answer`, then its
        `attribution` (or an `error`)."""
        started, user = time.perf_counter(), request_user(request.headers)
        stream = tutor.stream(body.question, body.history, explain=True, **ask_options(body))
        try:
            first = next(stream)  # a bad question or a full line fails here, before the stream starts
        except TutorError as exc:
            recorder.question_done("stream", started=started, error=exc, user=user, question=body.question)
            raise

        def events() -> Iterator[str]:
            def done(**outcome: Any) -> None:
                recorder.question_done("stream", started=started, user=user, question=body.question, **outcome)

            finished = False
            try:
                last: dict[str, Any] = {}
                for event in itertools.chain((first,), stream):
                    match event:
                        case Answered(answer=answer):
                            last = answer.to_dict()
                            yield sse_event("answer", last)
                        case Explained(answer=answer):
                            last = answer.to_dict()
                            yield sse_event("attribution", last)
                        case Queued(ahead=ahead):
                            yield sse_event("queued", {"ahead": ahead})
                        case Token(text=text):
                            yield sse_event("token", {"text": text})
                finished = True
                done(answer=last)  # after the stream ended: the model is free again
            except TutorError as exc:
                finished = True
                done(error=exc)
                yield sse_event("error", {"error": str(exc)})
            finally:
                if not finished:
                    done(outcome="left")

        return StreamingResponse(
            pumped(events()), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
        )

    for handler in (ask, ask_stream):  # FastAPI validates and documents this server's request model
        handler.__annotations__["body"] = ask_body
    router.post("/api/ask", responses={200: {"model": AnswerModel}, **REFUSALS})(ask)
    router.post(
        "/api/ask/stream",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}, "description": "Server-sent events."}, **REFUSALS},
    )(ask_stream)

    @router.get("/api/history")
    def history(request: Request) -> dict[str, Any]:
        """The signed-in user's earlier answers (a user is known behind an SSO proxy)."""
        user = request_user(request.headers)
        return {"user": user, "history": recorder.records.history(user)}

    return router
