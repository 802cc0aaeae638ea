"""Load benchmark: concurrent users against a real `tutor serve` on loopback, default model.

    python benchmarks/bench_load.py [--users 8] [--questions 10]
    python benchmarks/bench_load.py --questions 50     # the soak: 8 users x 50 questions

Starts the server in a subprocess, then:
- baseline: one user asks the questions one after another (the same stream route);
- load: every user asks the same questions at once, each waiting for its whole answer and its
  attribution before asking the next.
Prints errors, how many requests were told they were queued, the time until each request heard
anything (a `queued` or a `token` event), latency p50/p95 against the baseline's p50, and the
server's resident memory at the start and end of the load.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Result:
    latency: float
    first_event: float
    queued: bool
    error: str | None


def ask(url: str, question: str) -> Result:
    started = time.perf_counter()
    first_event, queued, error, finished = None, False, None, False
    try:
        with httpx.stream("POST", url + "api/ask/stream", json={"question": question}, timeout=600) as response:
            if response.status_code != 200:
                response.read()
                return Result(time.perf_counter() - started, time.perf_counter() - started, False, response.text)
            name = ""
            for line in response.iter_lines():
                if line.startswith("event: "):
                    name = line[7:]
                    if first_event is None:
                        first_event = time.perf_counter() - started
                    queued = queued or name == "queued"
                elif line.startswith("data: ") and name == "error":
                    error = json.loads(line[6:])["error"]
                elif line.startswith("data: ") and name == "attribution":
                    finished = True
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"
    if not finished and error is None:
        error = "the stream ended without an attribution"
    latency = time.perf_counter() - started
    return Result(latency, first_event if first_event is not None else latency, queued, error)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--questions", type=int, default=10, help="Questions per user (the set repeats if needed).")
    parser.add_argument("--baseline", type=int, default=10, help="Questions one user asks alone first.")
    args = parser.parse_args()

    questions = [json.loads(line) for line in (ROOT / "eval" / "questions.jsonl").read_text().splitlines()]
    single = [q["question"] for q in questions if not q.get("history")]
    questions = list(itertools.islice(itertools.cycle(single), args.questions))
    port = 7870 + os.getpid() % 100
    url = f"http://127.0.0.1:{port}/"
    data = tempfile.mkdtemp(prefix="tutor-load-")
    environment = {**os.environ, "TUTOR_DATA_DIR": data, "GRADIO_ANALYTICS_ENABLED": "False"}
    command = [sys.executable, "-c", "from tutor.cli import main; main()", "serve", "--port", str(port)]
    log = Path(data) / "serve.log"  # a file, not a pipe: one log line a question would fill a pipe and stall it
    server = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=log.open("w"))
    try:
        for _ in range(600):
            try:
                httpx.get(url + "readyz", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            raise SystemExit("the server did not come up")

        baseline = [ask(url, question) for question in questions[: args.baseline]]
        single_p50 = statistics.median(r.latency for r in baseline)
        print(
            f"baseline: 1 user x {len(baseline)} questions, p50 {single_p50:.2f} s per answer with attribution",
            flush=True,
        )

        results: list[Result] = []
        lock = threading.Lock()
        rss_start = rss_mb(server.pid)
        rss_peak = rss_start

        def user() -> None:
            for question in questions:
                result = ask(url, question)
                with lock:
                    results.append(result)

        threads = [threading.Thread(target=user) for _ in range(args.users)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        total = args.users * len(questions)
        curve: list[float] = []  # RSS as each tenth of the requests is done: warm-up or a leak
        while any(thread.is_alive() for thread in threads):
            rss = rss_mb(server.pid)
            rss_peak = max(rss_peak, rss)
            if len(results) >= (len(curve) + 1) * total / 10:
                curve.append(rss)
            time.sleep(1)
        wall = time.perf_counter() - started
        rss_end = rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)

    errors = [r.error for r in results if r.error]
    latencies = [r.latency for r in results]
    heard = [r.first_event for r in results]
    print(f"model: {os.environ.get('TUTOR_MODEL', 'default')}")
    print(f"load: {args.users} users x {len(questions)} questions = {len(results)} requests in {wall:.0f} s")
    print(f"  errors: {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))
    print(f"  told they were queued: {sum(r.queued for r in results)}; answered: {len(results) - len(errors)}")
    print(f"  first event (queued or token): p50 {statistics.median(heard):.2f} s, p95 {percentile(heard, 0.95):.2f} s")
    p50, p95 = statistics.median(latencies), percentile(latencies, 0.95)
    print(
        f"  latency: p50 {p50:.2f} s ({p50 / single_p50:.1f}x baseline p50), "
        f"p95 {p95:.2f} s ({p95 / single_p50:.1f}x baseline p50)"
    )
    per_minute = len(results) / wall * 60
    print(f"  throughput: {per_minute:.1f} answers a minute ({per_minute / 60 * single_p50:.2f}x one user's)")
    growth = (rss_end - rss_start) / rss_start * 100
    print(
        f"  server memory (RSS): {rss_start:.0f} MB at start, {rss_peak:.0f} MB peak, {rss_end:.0f} MB at end", end=""
    )
    print(f" ({growth:+.1f}%)")
    print("  RSS at each tenth of the load: " + ", ".join(f"{rss:.0f}" for rss in curve) + " MB")


if __name__ == "__main__":
    main()
