"""Prefill benchmark: the in-process model with llama.cpp's flash-attention kernels against without.

    python benchmarks/bench_prefill.py [--questions N] [--rounds R]

The tutor's own prompts for first questions of eval/questions.jsonl are built once, then each is
prefilled from the same cache state (what every prompt shares, the system prompt first, cached as
in a warm server) by two contexts of the same model file, one with flash attention and one
without, taking turns (each first half the time) so that a busy moment of the machine falls on
both; the ratio is the median of each turn's. Also the decoding rate of each, over 32 tokens.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def prefill_seconds(llm: Any, shared: list[int], prompt: list[int]) -> float:
    """Seconds to prefill `prompt` past `shared`, its prefix already in the context's cache
    (`eval` drops the cells past `n_tokens`)."""
    llm.n_tokens = len(shared)
    started = time.perf_counter()
    llm.eval(prompt[len(shared) :])
    return time.perf_counter() - started


def decode_seconds(llm: Any, prompt: list[int], tokens: int = 32) -> float:
    """Seconds a token, greedy, after `prompt`."""
    llm.reset()
    started = time.perf_counter()
    for count, _ in enumerate(llm.generate(prompt, temp=0.0), start=1):
        if count == 1:
            started = time.perf_counter()  # from the first token on: decoding only
        if count > tokens:
            break
    return (time.perf_counter() - started) / tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=8, help="First questions of eval/questions.jsonl to prefill.")
    parser.add_argument("--rounds", type=int, default=3, help="Times each prompt is prefilled by each context.")
    args = parser.parse_args()

    from tutor import build_tutor, load_settings
    from tutor.llm import LlamaCppChat
    from tutor.model_files import resolve_model_path

    settings = load_settings(attribution="off")
    tutor = build_tutor(settings.model_copy(update={"flash_attention": True}))
    path = resolve_model_path(settings.model_path, settings.model_sha256, settings.cache_dir, settings.model)
    chats = {
        "flash attention": tutor.chat,
        "without": LlamaCppChat(path, n_ctx=settings.n_ctx, n_threads=settings.n_threads, flash_attention=False),
    }
    lines = (ROOT / "eval" / "questions.jsonl").read_text().splitlines()
    asked = [q["question"] for q in map(json.loads, lines) if not q.get("out_of_scope") and not q.get("history")]
    prompts = []
    for question in asked[: args.questions]:
        prepared = tutor.prepare(question)
        if prepared.asks_model:
            prompts.append(tutor.messages_for(prepared))
    if not prompts:
        raise SystemExit("no question of eval/questions.jsonl was answered: is the index built (tutor ingest)?")
    token_lists = [tutor.chat._prompt_tokens(messages) for messages in prompts]  # type: ignore[attr-defined]
    shared = list(os.path.commonprefix(token_lists))
    llms = {name: chat._llm for name, chat in chats.items()}  # type: ignore[attr-defined]
    for llm in llms.values():  # the shared prefix cached, and one prompt prefilled untimed
        llm.reset()
        llm.eval(shared)
        prefill_seconds(llm, shared, token_lists[0])
    times: dict[str, list[float]] = {name: [] for name in llms}
    for turn in range(args.rounds * len(token_lists)):
        tokens = token_lists[turn % len(token_lists)]
        for name, llm in list(llms.items())[:: 1 if (turn + turn // len(token_lists)) % 2 else -1]:
            times[name].append(prefill_seconds(llm, shared, tokens))  # each context first half the time
    decode: dict[str, list[float]] = {name: [] for name in llms}
    for turn in range(2):
        for name, llm in list(llms.items())[:: 1 if turn else -1]:
            decode[name].append(decode_seconds(llm, token_lists[0]))

    past_shared = statistics.median(len(tokens) - len(shared) for tokens in token_lists)
    print(f"model: {path.stem}; {len(prompts)} prompts, p50 {past_shared:.0f} tokens prefilled past what they share")
    print(f"{'':28}{'flash attention':>16}{'without':>10}{'ratio':>8}")
    flash, without = times["flash attention"], times["without"]
    ratio = statistics.median(f / w for f, w in zip(flash, without, strict=True))
    print(f"{'prefill p50 (s)':28}{statistics.median(flash):16.3f}{statistics.median(without):10.3f}{ratio:8.2f}")
    print(f"{'prefill slowest (s)':28}{max(flash):16.3f}{max(without):10.3f}{max(flash) / max(without):8.2f}")
    flash_ms, without_ms = min(decode["flash attention"]) * 1000, min(decode["without"]) * 1000
    print(f"{'decoding (ms a token)':28}{flash_ms:16.1f}{without_ms:10.1f}{flash_ms / without_ms:8.2f}")


if __name__ == "__main__":
    main()
