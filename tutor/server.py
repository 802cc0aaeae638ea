"""One HTTP server: the Gradio page at /, a JSON API under /api, and health checks.

The API is a thin front end on `Tutor`: `POST /api/ask` returns the JSON contract of DESIGN.md,
`POST /api/ask/stream` streams the same as server-sent events (`token`, `answer`, then
`attribution` when it is measured), and every TutorError is a 400 with `{"error": "..."}`.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from .answer import Answer, Tutor
from .errors import TutorError


class AskRequest(BaseModel):
    """A question, with the conversation so far and the layers to use."""

    question: str = Field(description="The question, at most max_question_chars characters.")
    history: list[tuple[str, str]] = Field(default_factory=list, description="Earlier turns as [user, assistant].")
    preset: str | None = Field(None, description="A system prompt preset; `none` for a neutral one.")
    retrieval: bool = Field(True, description="Use passages from the guides.")
    k: int | None = Field(None, ge=1, le=20, description="Most passages in the prompt.")


def _options(request: AskRequest) -> dict[str, Any]:
    return {"preset": request.preset, "retrieval": request.retrieval, "k": request.k}


def _event(name: str, data: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def create_app(tutor: Tutor) -> FastAPI:
    """The API and health routes on one FastAPI app (the page is mounted by `serve`)."""
    app = FastAPI(title="tutor", description="Answers from the guides, with the layer that shaped each.")

    @app.exception_handler(TutorError)
    def tutor_error(_: Any, exc: TutorError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        """The index and the model are loaded: questions can be answered."""
        retriever = tutor.retriever
        if retriever is None or not retriever.chunk_count:
            return JSONResponse({"status": "no index", "model": tutor.chat.name}, status_code=503)
        return JSONResponse({"status": "ready", "model": tutor.chat.name, "corpus_version": retriever.corpus_version})

    @app.post("/api/ask")
    def ask(request: AskRequest) -> dict[str, Any]:
        """The whole answer with its sources and layer attribution (the JSON contract)."""
        return tutor.ask(request.question, request.history, **_options(request)).to_dict()

    @app.post("/api/ask/stream")
    def ask_stream(request: AskRequest) -> StreamingResponse:
        """Server-sent events: `token` pieces, the `answer`, then its `attribution` (or an `error`)."""
        stream = tutor.stream(request.question, request.history, **_options(request))
        first = next(stream)  # a bad question fails here, as a 400, before the stream starts

        def events() -> Iterator[str]:
            try:
                for item in itertools.chain((first,), stream):
                    if isinstance(item, Answer):
                        yield _event("answer", item.to_dict())
                        yield _event("attribution", tutor.explain(item).to_dict())
                    else:
                        yield _event("token", {"text": item})
            except TutorError as exc:
                yield _event("error", {"error": str(exc)})

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


def serve(tutor: Tutor, host: str, port: int, root_path: str = "") -> None:
    """The API and the page on one uvicorn server; `root_path` when a proxy serves it at a sub-path."""
    import gradio as gr
    import uvicorn

    from .ui import CSS, HEAD, build_ui

    app = gr.mount_gradio_app(create_app(tutor), build_ui(tutor), path="/", css=CSS, head=HEAD, show_error=False)
    uvicorn.run(app, host=host, port=port, root_path=root_path, log_level="warning")
