"""One HTTP server: the Gradio page at /, the embeddable chat at /embed, the JSON API under /api.

`create_app` puts the parts together: the refusals every route shares (a TutorError is a 400 with
`{"error": "..."}`, a full line of waiting questions a 503), health and metrics, the API
(tutor.web.api), the sign-in (tutor.web.login), the other doors (OpenAI-compatible, MCP), the
reference at /docs, and the page (tutor.web.page), all behind `Guard` (tutor.web.guard). `serve`
runs it with uvicorn.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import logging
import os
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..answer import Tutor
from ..config import Settings
from ..errors import BusyError, ConfigError, IndexMissingError, TutorError
from ..prompts import NO_PRESET
from ..records import Recorder, private_folder
from .api import api_router
from .api_docs import docs_html
from .gradio_guard import GradioGuard
from .guard import AUTHORISED, Guard, frame_ancestors, json_error, signed_in_as
from .login import login_router
from .schemas import ANSWER_CHARS_PER_TOKEN, ask_request_model

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def create_app(tutor: Tutor, *, with_page: bool = False) -> FastAPI:
    """The whole server: API, health, metrics, login, and (with_page) the Gradio page and embed."""
    settings = tutor.settings
    recorder = Recorder(settings, waiting=lambda: tutor.gate.waiting, busy=lambda: tutor.gate.busy)
    app = FastAPI(
        title="tutor",
        description="Answers from the guides, with the layer that shaped each.",
        docs_url=None,  # /docs below: Swagger UI and ReDoc load their scripts from a CDN
        redoc_url=None,
    )
    app.state.recorder = recorder
    _refusals(app)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz(request: Request) -> JSONResponse:
        """The index and the model are loaded: questions can be answered. The engines' addresses
        are said only to callers with the token: they name hosts of the private network."""
        retriever = tutor.retriever
        engines: dict[str, str | None] = {"model": tutor.chat.name}
        if request.scope.get(AUTHORISED):
            engines |= {"llm_url": settings.llm_url, "chroma_url": settings.chroma_url}
        if retriever is None or not retriever.chunk_count:
            return JSONResponse({"status": "no index", **engines}, status_code=503)
        return JSONResponse({"status": "ready", **engines, "corpus_version": retriever.corpus_version})

    @app.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
    def metrics() -> Response:
        """Prometheus metrics: questions by outcome, latencies, layer shares, the queue."""
        return Response(recorder.metrics.exposition(), media_type="text/plain; version=0.0.4")

    ask_body = ask_request_model(
        settings.max_question_chars,
        settings.max_answer_tokens * ANSWER_CHARS_PER_TOKEN,
        [*tutor.presets, NO_PRESET.name],
    )
    app.include_router(api_router(tutor, recorder, ask_body))
    app.include_router(login_router(settings))

    # The other doors, thin over the same tutor and behind the same Guard (MCP with the mcp extra).
    from ..openai_api import openai_router

    app.include_router(openai_router(tutor, recorder))
    if importlib.util.find_spec("mcp") is not None:
        from ..mcp_server import mount_mcp

        mount_mcp(app, tutor, recorder)

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        """The API's reference, from this server's schema, with nothing loaded from elsewhere."""
        return HTMLResponse(docs_html(app.openapi(), request.scope.get("root_path", "") + "/openapi.json"))

    if with_page:  # inside Guard: it sees the user that Guard named
        app.add_middleware(GradioGuard, identity=signed_in_as)
    app.add_middleware(
        Guard, settings=settings, on_response=lambda code: recorder.metrics.responses.labels(str(code)).inc()
    )
    if settings.cors_origins:  # outside Guard, so that a preflight needs no token
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )
    if with_page:
        _mount_page(app, tutor, recorder)
    return app


def _refusals(app: FastAPI) -> None:
    """Every refusal as `{"error": "..."}` with its status: what the API documents (REFUSALS)."""

    @app.exception_handler(StarletteHTTPException)
    def http_error(_: Any, exc: StarletteHTTPException) -> Response:  # e.g. a body that is not JSON
        return json_error(exc.status_code, str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    def invalid_request(_: Any, exc: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'] if p != 'body') or 'body'}: {err['msg']}" for err in exc.errors()[:5]
        )
        return json_error(422, f"invalid request: {problems}")

    @app.exception_handler(BusyError)
    def busy_error(_: Any, exc: BusyError) -> Response:
        return json_error(503, str(exc), {"Retry-After": "30"})

    @app.exception_handler(IndexMissingError)
    def index_missing(_: Any, exc: IndexMissingError) -> Response:  # no index, or its server is down
        return json_error(503, str(exc))

    @app.exception_handler(TutorError)
    def tutor_error(_: Any, exc: TutorError) -> Response:
        return json_error(400, str(exc))


def _mount_page(app: FastAPI, tutor: Tutor, recorder: Recorder) -> None:
    """The Gradio page at / and the embeddable chat at /embed (Gradio is imported only here)."""
    import gradio as gr

    from .page import build_page
    from .page_assets import CSS, HEAD

    page = {"css": CSS, "head": HEAD, "show_error": False, "footer_links": []}  # no Gradio footer
    gr.mount_gradio_app(app, build_page(tutor, recorder, embed=True), path="/embed", **page)
    gr.mount_gradio_app(app, build_page(tutor, recorder), path="/", **page)
    _refuse_unknown_events(app)


def _refuse_unknown_events(app: FastAPI) -> None:
    """An event the page does not have, named by a client (`/gradio_api/call/nothing`, a queue
    request with `fn_index` 999), is a 404. Gradio raised FnIndexInferError or KeyError there: a
    500 and a traceback in the log for a client's typo."""
    from gradio.route_utils import FnIndexInferError
    from starlette.routing import Mount

    def no_such_event(_: Any, exc: Exception) -> Response:
        return json_error(404, "this page has no such event")

    for route in app.routes:
        page: Any = route.app if isinstance(route, Mount) else None
        if hasattr(page, "get_blocks"):  # a mounted Gradio page
            page.add_exception_handler(FnIndexInferError, no_such_event)
            page.add_exception_handler(KeyError, no_such_event)


def check_exposure(settings: Settings, host: str) -> None:
    """Refuse to serve an open tutor beyond this machine unless that is asked for."""
    if host in LOOPBACK or settings.auth_token or settings.trusted_user_header or settings.open_access:
        return
    raise ConfigError(
        f"refusing to serve on {host} without auth: set TUTOR_AUTH_TOKEN (or TUTOR_TRUSTED_USER_HEADER "
        "behind an SSO proxy), or TUTOR_OPEN_ACCESS=true to serve it open"
    )


M_ARENA_MAX = -8  # glibc's mallopt parameter


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Keep the server's memory flat: glibc gives threads that allocate at the same time arenas
    of their own (up to eight a core), and the answering threads fragmented them. In a probe of 8
    concurrent users, resident memory grew 7.5% over 56 answers and was still growing; with two
    arenas it was flat after the first round. MALLOC_ARENA_MAX in the environment wins; off
    glibc this does nothing."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_ARENA_MAX, arenas)
    except (OSError, AttributeError):
        return


def serve(tutor: Tutor, host: str, port: int, root_path: str = "") -> None:
    """The API and the page on one uvicorn server; `root_path` when a proxy serves it at a sub-path."""
    import uvicorn

    check_exposure(tutor.settings, host)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    # Gradio's copies of the files it serves (the exports) in a private folder, not in the
    # system's temp folder where every account could read them.
    os.environ.setdefault("GRADIO_TEMP_DIR", str(private_folder(tutor.settings.data_dir / "gradio").resolve()))
    log = logging.getLogger("tutor.requests")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    log.info(json.dumps({"event": "start", "frame_ancestors": frame_ancestors(tutor.settings)}))
    uvicorn.run(
        create_app(tutor, with_page=True),
        host=host,
        port=port,
        root_path=root_path,
        log_level="warning",
        proxy_headers=False,  # the client address must be the peer's, for trusted_proxies
    )
