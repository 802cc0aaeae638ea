"""The tutor as an MCP server: tools `ask` and `search_guides`, and the guides as resources.

Built on the official `mcp` SDK (2.x, `MCPServer`). `tutor mcp` serves it over stdio for a
desktop assistant; `tutor serve` mounts it over streamable HTTP at /mcp, behind the same Guard
(token, user header, size limit) as every other route. Stateless: each request stands alone,
so replicas behind a load balancer need no sticky sessions.

No tool reads a file or fetches a URL: the guides' text comes from the index, and only the
guides that are indexed are listed.
"""

# No `from __future__ import annotations`: the SDK reads the tools' annotations at runtime, and
# they name this server's presets and limits.
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import quote

import anyio.to_thread
from pydantic import Field

try:
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.server.mcpserver.resources import FunctionResource
    from mcp.server.transport_security import TransportSecuritySettings
    from mcp_types import ToolAnnotations
except ImportError as exc:  # pragma: no cover - the extra is part of the test install
    raise ImportError("the MCP server needs the official MCP SDK: pip install 'tutor[mcp]'") from exc

from .answer import Tutor, check_question
from .config import PassageCount
from .errors import TutorError
from .index import TEXT, kind_of
from .injection import planted_sentences, without_planted
from .prompts import NO_PRESET
from .retrieve import join_overlapping

if TYPE_CHECKING:
    from fastapi import FastAPI

    from .records import Recorder

INSTRUCTIONS = (
    "A tutor on how AI language models are trained (pre-training, fine-tuning, preference "
    "optimization, prompting, RAG). `ask` answers from its guides with numbered citations [n], "
    "the sources, and how much of the answer came from the system prompt, the passages and the "
    "model's own knowledge; `search_guides` returns the passages it would use. The guides are "
    "resources."
)
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)
Listener = Callable[..., None]


def guide_texts(tutor: Tutor) -> dict[str, tuple[str, str]]:
    """{path: (title, text)} for every indexed guide, rebuilt from its chunks: sections under
    their headings, the chunks' overlaps said once, sentences that read as instructions to a
    model left out (as the tutor's prompt leaves them out)."""
    if tutor.retriever is None:
        return {}
    rows: dict[str, list[tuple[int, str, str, str]]] = {}
    for meta, text in tutor.retriever.chunks():
        if kind_of(meta) != TEXT:  # a guide's card is the tutor's summary of it, not its text
            continue
        rows.setdefault(str(meta["path"]), []).append(
            (int(meta["position"]), str(meta["section"]), text, meta["guide"])
        )
    guides = {}
    for path, chunks in rows.items():
        chunks.sort()
        sections: list[tuple[str, str]] = []
        for _, section, text, _ in chunks:
            if sections and sections[-1][0] == section:
                sections[-1] = (section, join_overlapping(sections[-1][1], text))
            else:
                sections.append((section, text))
        title = chunks[0][3]
        parts = [f"# {title}"]
        for section, text in sections:
            clean = without_planted(text, planted_sentences(text))
            parts.append(f"## {section}\n\n{clean}" if section else clean)
        guides[path] = (title, "\n\n".join(parts) + "\n")
    return guides


def build_mcp(tutor: Tutor, on_question: Listener | None = None) -> MCPServer:
    """The MCP server over a tutor; `on_question` is called as Recorder.question_done is."""
    server: MCPServer = MCPServer("tutor", instructions=INSTRUCTIONS, log_level="WARNING")
    presets = tuple([*tutor.presets, NO_PRESET.name])
    limit = tutor.settings.max_question_chars

    def report(started: float, question: str, **outcome: Any) -> None:
        if on_question is not None:
            on_question("mcp", started=started, question=question, **outcome)

    @server.tool(annotations=READ_ONLY)
    async def ask(
        question: Annotated[
            str, Field(description=f"A question about training AI models; at most {limit} characters.")
        ],
        preset: Annotated[
            Literal[presets] | None,  # type: ignore[valid-type]
            Field(description="The system prompt preset; default: the tutor's."),
        ] = None,
        retrieval: Annotated[bool, Field(strict=True, description="Answer from passages of the guides.")] = True,
        k: Annotated[PassageCount, Field(description="Most passages in the prompt.")] = None,
    ) -> dict[str, Any]:
        """Answer a question from the guides: the answer with [n] citations, its numbered sources,
        which passage supports each sentence, and the share of the answer that came from the
        system prompt, the passages and the model's own knowledge."""
        started = time.perf_counter()
        try:
            call = partial(tutor.ask, question, preset=preset, retrieval=retrieval, k=k)
            answer = (await anyio.to_thread.run_sync(call)).to_dict()
        except TutorError as exc:
            report(started, question, error=exc)
            raise ToolError(str(exc)) from None
        report(started, question, answer=answer)
        keep = ("answer", "sources", "sentences", "attribution", "in_scope", "warnings", "preset", "corpus_version")
        return {name: answer[name] for name in keep}

    @server.tool(annotations=READ_ONLY)
    async def search_guides(
        query: Annotated[str, Field(description="What to look for in the guides.")],
        k: Annotated[PassageCount, Field(description="Most passages.")] = None,
    ) -> dict[str, Any]:
        """The passages of the guides the tutor would answer this from, best first, with their
        cosine similarity to the query (none when the guides do not cover it)."""
        try:
            checked = check_question(query, limit)
            passages, version = await anyio.to_thread.run_sync(partial(tutor.retrieve, checked, k=k))
        except TutorError as exc:
            raise ToolError(str(exc)) from None
        found = [
            {
                "n": n,
                "guide": p.guide,
                "path": p.path,
                "section": p.section,
                "text": without_planted(p.text, p.planted),
                "score": p.score,
            }
            for n, p in enumerate(passages, start=1)
        ]
        return {"query": checked, "corpus_version": version, "passages": found}

    for path, (title, _) in guide_texts(tutor).items():
        server.add_resource(
            FunctionResource(
                uri=f"guide:///{quote(path)}",
                name=path,
                title=title,
                description=f"The guide “{title}” as indexed.",
                mime_type="text/markdown",
                fn=partial(_guide_text, tutor, path),
            )
        )
    return server


def _guide_text(tutor: Tutor, path: str) -> str:
    """The guide's text from the current index version (a guide removed since is an error)."""
    found = guide_texts(tutor).get(path)
    if found is None:
        raise ValueError(f"{path} is no longer in the index")
    return found[1]


def mount_mcp(app: "FastAPI", tutor: Tutor, recorder: "Recorder") -> None:
    """Serve the MCP server at /mcp on the tutor's own app (so behind its Guard)."""
    server = build_mcp(tutor, recorder.question_done)
    # The Guard checks the token; the SDK's Host/Origin check would refuse the intranet's name.
    http = server.streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http=True,
        json_response=True,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    app.router.routes.extend(http.routes)
    outer = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(parent: Any) -> AsyncIterator[Any]:
        async with server.session_manager.run(), outer(parent) as state:
            yield state

    app.router.lifespan_context = lifespan
