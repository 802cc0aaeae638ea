"""What the served tutor records: one log line and metrics per question, feedback, per-user history.

Log lines are JSON on the `tutor.requests` logger, without the question's text unless
`log_questions` is on. Metrics are Prometheus counters and histograms in a registry of their own,
served at /metrics. Feedback goes to `data_dir/feedback.jsonl`; when the user is known (a trusted
SSO header), each answer also goes to that user's history file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from .config import Settings

LOG = logging.getLogger("tutor.requests")
LATENCY_BUCKETS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0)
SHARE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
HISTORY_KEPT = 200  # most recent lines of a user's history read (answers and clear marks)
CLEARED = "cleared"  # a history line {CLEARED: id} marks a conversation the user cleared
EXPORTS_KEPT_SECONDS = 3600  # an export is downloaded at once; older ones are removed at the next export


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def private_folder(path: Path) -> Path:
    """`path` made with its missing parents, each readable by this user alone (0700): the records
    hold what people asked, and other accounts on the machine have no business reading them."""
    missing = [folder for folder in (path, *path.parents) if not folder.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
    return path


def _private_open(path: str, flags: int) -> int:
    descriptor = os.open(path, flags, 0o600)
    os.fchmod(descriptor, 0o600)  # also a file made before records were private
    return descriptor


def write_private(path: Path, text: str, mode: str = "w") -> None:
    """Write (or with mode "a", append) `text` to a file only this user can read (0600)."""
    private_folder(path.parent)
    with open(path, mode, encoding="utf-8", opener=_private_open) as out:
        out.write(text)


def _append(path: Path, record: dict[str, Any], lock: threading.Lock) -> None:
    with lock:
        write_private(path, json.dumps({"time": _now(), **record}, ensure_ascii=False) + "\n", mode="a")


def user_file_name(user: str) -> str:
    """A safe, distinct file name for a user name from a header."""
    readable = re.sub(r"[^A-Za-z0-9._@-]", "_", user).lstrip(".")[:60]
    return f"{readable}-{hashlib.sha256(user.encode()).hexdigest()[:10]}.jsonl"


class Records:
    """Feedback and per-user history under the data folder."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._lock = threading.Lock()

    def feedback(self, record: dict[str, Any], user: str | None = None) -> None:
        _append(self.data_dir / "feedback.jsonl", {**({"user": user} if user else {}), **record}, self._lock)

    def remember(self, user: str | None, answer: dict[str, Any]) -> None:
        """Add an answer to its user's history; nothing is kept for an unknown user."""
        if not user:
            return
        # With the sources, sentences and conversation, the page can restore the last conversation.
        keep = (
            *("question", "answer", "preset", "retrieval", "in_scope", "attribution", "corpus_version"),
            *("sources", "sentences", "warnings", "query", "model", "conversation"),
        )
        _append(self._history_file(user), {key: answer.get(key) for key in keep}, self._lock)

    def clear(self, user: str | None, conversation: str) -> None:
        """Mark the conversation the user cleared from the chat, so that a reload does not bring
        it back; its answers stay in their history. By its id: an answer of it written after the
        mark, or another tab's conversation, is told apart."""
        if user:
            _append(self._history_file(user), {CLEARED: conversation}, self._lock)

    def history(self, user: str | None, *, with_clears: bool = False) -> list[dict[str, Any]]:
        """The user's most recent answers, oldest first; `with_clears`: and the marks of the
        conversations they cleared, {CLEARED: id}."""
        path = self._history_file(user) if user else None
        if path is None or not path.exists():
            return []
        with self._lock:
            lines = path.read_text(encoding="utf-8").splitlines()[-HISTORY_KEPT:]
        items = [json.loads(line) for line in lines if line.strip()]
        return items if with_clears else [item for item in items if CLEARED not in item]

    def _history_file(self, user: str) -> Path:
        return self.data_dir / "history" / user_file_name(user)

    def export(self, files: dict[str, str], now: float | None = None) -> list[Path]:
        """Write one conversation export ({file name: text}) to a new private folder under
        `data_dir/exports`, and remove the exports older than EXPORTS_KEPT_SECONDS.

        Not the system's temp folder, where exports were readable by every account and never
        removed. The page hands the paths to Gradio, which copies them into its own cache.
        """
        exports = private_folder(self.data_dir / "exports")
        cutoff = (time.time() if now is None else now) - EXPORTS_KEPT_SECONDS
        for old in exports.iterdir():
            with contextlib.suppress(OSError):  # another export removed it first
                if old.is_dir() and old.stat().st_mtime < cutoff:
                    shutil.rmtree(old)
        folder = Path(tempfile.mkdtemp(prefix="conversation-", dir=exports))  # 0700, a name nobody can guess
        paths = []
        for name, text in files.items():
            paths.append(folder / Path(name).name)
            write_private(paths[-1], text)
        return paths


class Metrics:
    """Prometheus metrics of one server."""

    def __init__(self, waiting: Callable[[], int], busy: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.questions = Counter(
            "tutor_questions", "Questions by front end and outcome.", ["front_end", "outcome"], registry=r
        )
        self.answer_seconds = Histogram(
            "tutor_answer_seconds",
            "Question to finished answer (with attribution).",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.first_token_seconds = Histogram(
            "tutor_first_token_seconds", "Question to first answer token.", buckets=LATENCY_BUCKETS, registry=r
        )
        self.layer_share = Histogram(
            "tutor_layer_share", "Share of each layer in the answers.", ["layer"], buckets=SHARE_BUCKETS, registry=r
        )
        self.responses = Counter("tutor_http_responses", "HTTP responses by status code.", ["code"], registry=r)
        Gauge("tutor_queue_waiting", "Questions waiting for the model.", registry=r).set_function(waiting)
        Gauge("tutor_model_busy", "Generations running on the model.", registry=r).set_function(busy)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class Recorder:
    """What each question leaves behind, for every front end alike: its log line, the metrics, and
    the records (feedback and the user's history)."""

    def __init__(self, settings: Settings, waiting: Callable[[], int], busy: Callable[[], int]) -> None:
        self.log_questions = bool(settings.log_questions)
        self.metrics = Metrics(waiting, busy)
        self.records = Records(settings.data_dir)

    def question_done(
        self,
        front_end: str,
        *,
        started: float,
        answer: dict[str, Any] | None = None,
        error: Exception | None = None,
        user: str | None = None,
        question: str | None = None,
        outcome: str | None = None,
    ) -> None:
        """One log line and the metrics for a question: answered, refused, or `outcome` (such as
        "left": the client went away first)."""
        latency = time.perf_counter() - started
        line: dict[str, Any] = {"event": "question", "front_end": front_end, "latency_s": round(latency, 3)}
        if user:
            line["user"] = user
        if outcome is not None:
            line["outcome"] = outcome
        elif error is not None:
            outcome = "busy" if type(error).__name__ == "BusyError" else "rejected"
            line.update(outcome=outcome, error=str(error))
        else:
            assert answer is not None
            outcome = "answered" if answer.get("in_scope") is not False else "out_of_scope"
            shares = answer.get("attribution") or {}
            timings = answer.get("timings") or {}
            line.update(
                outcome=outcome,
                in_scope=answer.get("in_scope"),
                preset=answer.get("preset"),
                passages=len(answer.get("sources") or []),
                first_token_s=timings.get("first_token_s"),
                layers={name: shares.get(name) for name in ("prompt", "retrieval", "model")} if shares else None,
                corpus_version=answer.get("corpus_version"),
            )
            self.metrics.answer_seconds.observe(latency)
            if timings.get("first_token_s") is not None:
                self.metrics.first_token_seconds.observe(float(timings["first_token_s"]))
            for name in ("prompt", "retrieval", "model"):
                if isinstance(shares.get(name), (int, float)):
                    self.metrics.layer_share.labels(name).observe(float(shares[name]))
            self.records.remember(user, answer)
        if self.log_questions and question is not None:
            line["question"] = question
        self.metrics.questions.labels(front_end, outcome).inc()
        LOG.info(json.dumps(line, ensure_ascii=False))
