"""Layers benchmark: what attribution and compare mode cost, against the answer they explain.

    python benchmarks/bench_layers.py [--questions N] [--compare N]

- attribution (layered, the default): its time against the answer's own generation time
  (first token to last, plus prefill: the answer's total time less retrieval), per answer
- attribution (shapley, 3 scoring passes): the same, and how far its shares are from layered's
- compare mode: four answers with their attributions against one answer with its attribution
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=8, help="In-scope questions for attribution.")
    parser.add_argument("--compare", type=int, default=3, help="Questions for compare mode.")
    args = parser.parse_args()

    from tutor import Tutor, build_tutor, load_settings
    from tutor.answer import Explained

    tutor = build_tutor(load_settings(attribution="layered"))
    shapley = Tutor(
        retriever=tutor.retriever,
        chat=tutor.chat,
        embedder=tutor.embedder,
        presets=tutor.presets,
        settings=load_settings(attribution="shapley"),
    )
    questions = [json.loads(line) for line in (ROOT / "eval" / "questions.jsonl").read_text().splitlines()]
    questions = [q["question"] for q in questions if not q.get("out_of_scope") and not q.get("history")]
    tutor.warm_up()
    tutor.ask("What is pre-training?")  # load the embedder and the index

    ratios: dict[str, list[float]] = {"layered": [], "shapley": []}
    generation, gaps = [], []
    for question in questions[: args.questions]:
        shares = {}
        for name, explainer in (("layered", tutor), ("shapley", shapley)):
            tutor.warm_up()
            answer = tutor.ask(question, explain=False)
            generated_s = float(answer.timings["total_s"] or 0) - float(answer.timings["retrieve_s"] or 0)
            explained = explainer.explain(answer)
            ratios[name].append(float(explained.timings["explain_s"] or 0) / generated_s)
            generation.append(generated_s)
            shares[name] = explained.attribution or {}
        gaps.append(max(abs(shares["layered"][k] - shares["shapley"][k]) for k in ("prompt", "retrieval", "model")))

    single, compared = [], []
    for question in questions[: args.compare]:
        tutor.warm_up()
        started = time.perf_counter()
        tutor.ask(question)
        single.append(time.perf_counter() - started)
        tutor.warm_up()
        started = time.perf_counter()
        attributed = [e.answer for _, e in tutor.compare(question) if isinstance(e, Explained) and e.answer.attribution]
        compared.append(time.perf_counter() - started)
        assert len(attributed) == 4

    median = statistics.median
    print(f"model: {tutor.chat.name}; {args.questions} questions; answer generation p50 {median(generation):.2f} s")
    print(f"{'figure':34} {'value':>7}  baseline")
    print(f"{'attribution, layered (ratio p50)':34} {median(ratios['layered']):7.2f}  the answer's own generation time")
    print(f"{'attribution, layered (ratio max)':34} {max(ratios['layered']):7.2f}  the answer's own generation time")
    print(f"{'attribution, shapley (ratio p50)':34} {median(ratios['shapley']):7.2f}  the answer's own generation time")
    print(f"{'shares, layered vs shapley':34} {median(gaps):7.3f}  p50 of the largest difference in a share")
    print(
        f"{'compare mode (ratio p50)':34} {median([c / s for c, s in zip(compared, single, strict=True)]):7.2f}"
        f"  one answer with its attribution ({median(single):.2f} s; compare {median(compared):.2f} s)"
    )


if __name__ == "__main__":
    main()
