"""The `tutor` command: ingest | ask | eval | compare | presets | serve | mcp. A thin client of the core."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from .config import K_MAX, K_MIN, Settings, load_settings
from .errors import IndexMissingError, TutorError


def _settings(**flags: Any) -> Settings:
    return load_settings(**flags)


@click.group()
@click.version_option(package_name="tutor")
def cli() -> None:
    """A local tutor on how AI language models are trained, answering from the guides."""


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--index-dir", type=click.Path(path_type=Path), help="Index folder (TUTOR_INDEX_DIR).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def ingest(paths: tuple[Path, ...], index_dir: Path | None, quiet: bool) -> None:
    """Index the guides in PATHS (default: the corpus folder); only what changed is embedded.

    The index then holds exactly these guides: a guide no longer among them is removed.
    """
    from .factory import ingest_from_settings

    report = ingest_from_settings(_settings(index_dir=index_dir), paths, progress=not quiet)
    guides = len(report.added) + len(report.changed) + report.unchanged
    passages = f"{report.chunks_total - guides} chunks and {guides} guide cards"  # a card a guide
    if report.noop:
        click.echo(
            f"index up to date: {guides} guides, {passages}, "
            f"corpus {report.corpus_version} ({report.seconds:.2f} s, nothing embedded)"
        )
    else:
        click.echo(
            f"indexed {passages} from {guides} guides "
            f"(added {len(report.added)}, changed {len(report.changed)}, removed {len(report.removed)}, "
            f"unchanged {report.unchanged}); embedded {report.chunks_embedded} passages in {report.seconds:.2f} s; "
            f"corpus {report.corpus_version}"
        )


@cli.command()
@click.argument("question")
@click.option("--json", "as_json", is_flag=True, help="Print the whole answer as one JSON object.")
@click.option("--preset", help="System prompt preset (see `tutor presets`).")
@click.option("--no-retrieval", is_flag=True, help="The model and the system prompt alone, no passages.")
@click.option("-k", type=click.IntRange(K_MIN, K_MAX), help=f"Most passages in the prompt ({K_MIN}-{K_MAX}).")
def ask(question: str, as_json: bool, preset: str | None, no_retrieval: bool, k: int | None) -> None:
    """Answer QUESTION from the guides, with its sources (`-` reads the question from stdin)."""
    if question == "-":
        question = sys.stdin.buffer.read().decode("utf-8", errors="surrogateescape")
    from .answer import Answer, Answered, Explained, Token, check_question, correction
    from .explain import describe_layers
    from .factory import build_tutor
    from .prompts import load_presets, pick_preset

    settings = _settings()
    check_question(question, settings.max_question_chars)  # bad input is refused before loading anything
    pick_preset(load_presets(settings.prompts_dir), preset or settings.preset)
    tutor = build_tutor(settings, retrieval=not no_retrieval)
    answer: Answer | None = None
    streamed = ""
    for event in tutor.stream(question, preset=preset, retrieval=not no_retrieval, k=k, explain=True):
        match event:
            case Answered(answer=finished) | Explained(answer=finished):
                answer = finished  # Explained, the last, carries the attribution
            case Token(text=text) if not as_json:
                click.echo(text, nl=False)
                streamed += text
    assert answer is not None
    if as_json:
        click.echo(json.dumps(answer.to_dict(), ensure_ascii=False))
        return
    click.echo(correction(streamed, answer))
    if answer.sources:
        click.echo("\nSources:")
        for n, passage in enumerate(answer.sources, start=1):
            where = f" > {passage.section}" if passage.section else ""
            click.echo(f"  [{n}] {passage.guide}{where} ({passage.path}, score {passage.score:.2f})")
    if answer.attribution:
        click.echo(f"\nShaped by: {describe_layers(answer.attribution)}")
    for warning in answer.warnings:
        click.echo(f"Warning: {warning}")


@cli.command(name="eval")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write one JSON answer per question.",
)
@click.option("--preset", help="System prompt preset.")
@click.option("--no-retrieval", is_flag=True, help="Answer without passages (a baseline).")
@click.option("--limit", type=int, help="Only the first N questions (of the half chosen).")
@click.option(
    "--half",
    type=click.Choice(["tune", "holdout", "all"]),
    default="all",
    show_default=True,
    help="Answer only the tuning half or the hold-out half (split by a hash of each id).",
)
def eval_command(file: Path, out: Path, preset: str | None, no_retrieval: bool, limit: int | None, half: str) -> None:
    """Answer every question in FILE (JSON lines) and print the scores of each half and of all."""
    from .evaluate import HALF_LABELS, format_scores, half_of, load_questions, run_eval, score_halves, select_half
    from .factory import build_tutor

    questions = load_questions(file)
    sizes = ", ".join(f"{HALF_LABELS[h]} {sum(half_of(q['id']) == h for q in questions)}" for h in ("tune", "holdout"))
    chosen = select_half(questions, half)[:limit]
    tutor = build_tutor(_settings(), retrieval=not no_retrieval)
    outcomes = run_eval(
        tutor,
        chosen,
        out,
        preset=preset,
        retrieval=not no_retrieval,
        progress=lambda i, n, qid: click.echo(f"[{i}/{n}] {qid}", err=True),
    )
    title = f"{file}: {len(questions)} questions ({sizes}); answered {len(chosen)}; model {tutor.chat.name}"
    click.echo(format_scores(score_halves(outcomes), title) if outcomes else title)


@cli.command()
@click.argument("before", type=click.Path(exists=True, path_type=Path))
@click.argument("after", type=click.Path(exists=True, path_type=Path))
def compare(before: Path, after: Path) -> None:
    """Compare two runs of `tutor eval --out` (files, or folders of them as `make eval` writes):
    facts, questions gained and lost with a sign test, unchanged answers and length, each half."""
    from .evaluate import compare_runs, format_comparison, load_run

    if before.is_dir() != after.is_dir():
        raise TutorError("compare two folders of runs, or two run files of one set")
    compared = compare_runs(load_run(before), load_run(after))
    if not compared["halves"]:
        raise TutorError(f"{before} and {after} share no question")
    click.echo(format_comparison(compared, f"{before} -> {after}"))


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=7860, show_default=True, type=int, help="Port to listen on.")
@click.option("--root-path", default="", help="The sub-path a reverse proxy serves the tutor at, such as /tutor.")
@click.option("--log-questions", is_flag=True, default=None, help="Put the question text in the request log lines.")
def serve(host: str, port: int, root_path: str, log_questions: bool | None) -> None:
    """Serve the page and the JSON API; builds the index from the corpus on first run, or when it
    holds another embedding model's vectors."""
    from .web.app import limit_malloc_arenas

    limit_malloc_arenas()  # before the model and its threads allocate
    from .factory import build_tutor, ingest_from_settings
    from .web.app import check_exposure
    from .web.app import serve as serve_http

    settings = _settings(log_questions=log_questions)
    check_exposure(settings, host)
    if reason := _why_build_the_index(settings):
        click.echo(f"{reason}: building it from {settings.corpus_dir} ...")
        ingest_from_settings(settings, progress=True)
    tutor = build_tutor(settings)
    tutor.warm_up()
    click.echo(f"the tutor is at http://{host}:{port}{root_path}/ (chat only, for a frame: {root_path}/embed/)")
    serve_http(tutor, host, port, root_path)


def _why_build_the_index(settings: Settings) -> str | None:
    """Why a server builds the index before it starts: there is none, or its vectors are another
    embedding model's (the default changed, or TUTOR_EMBED_MODEL did). A Chroma server's index is
    not rebuilt by whichever tutor starts first: that is `tutor ingest`'s to do."""
    from .factory import build_embedder, index_store, other_embedder_of_index

    manifest = index_store(settings).read_manifest()
    if manifest is None:
        return "no index yet"
    if built := other_embedder_of_index(manifest, build_embedder(settings)):
        if settings.chroma_url:  # shared by other tutors, which may still embed with that model
            raise IndexMissingError(
                f"the index on {settings.chroma_url} was built with the embedding model {built}: run `tutor ingest` "
                "once to build it again (tutors still on the old model keep the version they have)"
            )
        return f"the index was built with the embedding model {built}"
    return None


@cli.command()
def mcp() -> None:
    """Serve the tutor to an MCP client over stdio (tools ask and search_guides, the guides as resources)."""
    from .factory import build_tutor, ingest_from_settings
    from .mcp_server import build_mcp

    settings = _settings()
    if reason := _why_build_the_index(settings):  # stdout is the protocol's: say it on stderr
        click.echo(f"{reason}: building it from {settings.corpus_dir} ...", err=True)
        ingest_from_settings(settings, progress=True)
    build_mcp(build_tutor(settings)).run("stdio")


@cli.command()
def presets() -> None:
    """List the system prompt presets."""
    from .prompts import load_presets

    for preset in load_presets(_settings().prompts_dir).values():
        click.echo(f"{preset.name}: {preset.description}")


def run(args: list[str] | None = None) -> int:
    """Run the command line; a TutorError becomes one line on stderr and exit status 1."""
    try:
        code = cli.main(args=args, prog_name="tutor", standalone_mode=False)
    except TutorError as exc:
        click.echo(f"error: {exc}", err=True)
        return 1
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except (click.Abort, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        return 130
    return code if isinstance(code, int) else 0


def main() -> None:
    """Entry point of the `tutor` script."""
    sys.exit(run())
