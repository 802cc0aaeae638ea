"""Chat backends behind one small seam. The in-process llama.cpp model is the default."""

from __future__ import annotations

import codecs
import json
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np

from .errors import ModelError
from .llama_shim import LlamaInternals, check_version

LOG = logging.getLogger("tutor.llm")

Message = dict[str, str]
TokenLogprobs = list[tuple[str, float]]  # each answer token's text and its log-probability

# Markup of chat templates (ChatML, Llama, Mistral) in text that a user or a guide wrote.
CHAT_MARKUP = re.compile(r"<\|[A-Za-z_]+\|>|\[/?INST\]|<</?SYS>>|</?s>")


def neutralise_markup(text: str) -> str:
    """Chat-template markup kept as visible text: `<|im_end|>` becomes `<| im_end |>`, which no
    tokenizer reads as its special token and no template parser as a turn."""
    return CHAT_MARKUP.sub(lambda m: re.sub(r"^(\W+)(.*?)(\W+)$", r"\1 \2 \3", m.group(0)), text)


@dataclass
class Generation:
    """One generation, filled by the backend as it streams: the messages it answered, the text,
    and each token's text and log-probability under those messages. One per call, so that the
    attribution of one answer never reads another's (several generate at once on an LLM server)."""

    messages: list[Message]
    text: str = ""
    scored: TokenLogprobs = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)  # token ids, where the backend has them
    complete: bool = False  # the backend read every token's log-probability
    # Context-aware decoding: the messages without passages, and the answer's tokens under them.
    contrast: list[Message] | None = None
    contrast_scored: TokenLogprobs = field(default_factory=list)

    def logprobs_for(self, messages: list[Message], answer: str) -> TokenLogprobs | None:
        """This generation's log-probabilities under these messages if it read them, else None."""
        if not self.complete or self.text != answer:
            return None
        if messages == self.messages:
            return list(self.scored)
        if messages == self.contrast and len(self.contrast_scored) == len(self.scored):
            return list(self.contrast_scored)
        return None


class ChatModel(Protocol):
    """What the pipeline needs from a chat model."""

    name: str

    def stream(
        self,
        messages: list[Message],
        *,
        max_tokens: int,
        temperature: float,
        generation: Generation | None = None,
        contrast: list[Message] | None = None,
        aside: bool = False,
    ) -> Iterator[str]:
        """Yield the reply's text pieces as they are generated, filling `generation` if given.

        `contrast` (the messages without the passages) asks for context-aware decoding where the
        backend has it: each token is chosen for what the passages add to the model's belief.
        `aside` marks a short call beside the conversation (the scope judgement, the stance check): where the backend
        caches the last prompt, that cache is kept for the next answer."""
        ...

    def count_tokens(self, text: str) -> int:
        """How many tokens the text costs in a prompt."""
        ...

    def token_logprobs(
        self, messages: list[Message], answer: str, *, generation: Generation | None = None
    ) -> TokenLogprobs:
        """How likely the model finds a given answer after the messages, token by token (no generation).

        `generation` is the answer's own generation: its log-probabilities are reused when the
        messages are the ones it answered."""
        ...


def log_softmax_at(logits: np.ndarray, token: int) -> float:
    """log p(token) from one row of logits."""
    top = float(logits.max())
    return float(logits[token] - top - np.log(np.exp(logits - top).sum()))


class _Pieces:
    """A generation's tokens as text pieces, as they come: a character of several bytes is given
    once its last byte is there. The text so far is kept in `generation`, when there is one."""

    def __init__(self, llm: Any, prompt: list[int], generation: Generation | None) -> None:
        self._llm, self._prompt, self._generation = llm, prompt, generation
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.tokens: list[int] = []
        self.text = ""

    def add(self, token: int) -> str:
        """The new token's text (empty while a character is incomplete)."""
        previous = self._prompt + self.tokens
        self.tokens.append(token)
        piece = self._decoder.decode(self._llm.detokenize([token], prev_tokens=previous))
        self.text += piece
        if piece and self._generation is not None:
            self._generation.text = self.text
        return piece


class LlamaCppChat:
    """A GGUF model run in-process by llama-cpp-python.

    Prompts are formatted with the model's own chat template and the generation loop is ours, so
    that each generated token's log-probability is read as it is sampled: attribution then needs
    no pass over the full prompt again. llama.cpp keeps the KV cache of the previous prompt and
    evaluates only what follows the shared prefix, both when generating and when scoring, so the
    system prompt (first, the same for every question) is prefilled once.
    """

    def __init__(
        self, path: Path, *, n_ctx: int = 4096, n_threads: int | None = None, flash_attention: bool = True
    ) -> None:
        try:
            import llama_cpp
            from llama_cpp import Llama
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        except ImportError:
            raise ModelError("llama-cpp-python is not installed: pip install llama-cpp-python") from None
        check_version(str(getattr(llama_cpp, "__version__", "unknown")))  # before the model takes seconds to load
        # llama-cpp-python generates on half the cores by default (prefill uses all): on 2 cores
        # one thread decoded 17 tokens/s, two 25 (benchmarks, README).
        n_threads = n_threads or os.cpu_count() or 1

        def open_context() -> Any:
            return Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_threads=n_threads,
                n_batch=512,
                flash_attn=flash_attention,
                verbose=False,
            )

        try:
            self._llm: Any = open_context()
            self._open_context = open_context
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"llama.cpp cannot load {path}: {exc}") from None
        template = self._llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise ModelError(f"{path} has no chat template in its metadata")
        self._format = Jinja2ChatFormatter(
            template=template,
            eos_token=self._llm.detokenize([self._llm.token_eos()]).decode("utf-8", "replace"),
            bos_token=self._llm.detokenize([self._llm.token_bos()]).decode("utf-8", "replace"),
        )
        self._main = LlamaInternals(self._llm)  # checked now: an untested llama-cpp-python stops here
        self.name = path.stem
        self._lock = threading.Lock()  # one generation or scoring at a time
        self._plain: LlamaInternals | None = None  # a second context, for the messages without passages

    def _prompt_tokens(self, messages: list[Message]) -> list[int]:
        """The prompt's tokens: the template's own markup as special tokens, every message's content
        as text only, so that `<|im_end|>` typed by a user or planted in a guide is never a turn."""
        slots = [{**m, "content": f"\ue000{i}\ue001"} for i, m in enumerate(messages)]
        prompt = self._format(messages=cast(Any, slots)).prompt
        parts = re.split(r"\ue000(\d+)\ue001", prompt)
        if len(parts) != 2 * len(messages) + 1:  # a template that rewrites content: markup made visible
            visible = [{**m, "content": neutralise_markup(m["content"])} for m in messages]
            prompt = self._format(messages=cast(Any, visible)).prompt
            return list(self._llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True))
        tokens: list[int] = []
        for i, part in enumerate(parts):
            text, special = (messages[int(part)]["content"], False) if i % 2 else (part, True)
            if text:
                tokens += self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=special)
        return tokens

    def stream(
        self,
        messages: list[Message],
        *,
        max_tokens: int,
        temperature: float,
        generation: Generation | None = None,
        contrast: list[Message] | None = None,
        aside: bool = False,
    ) -> Iterator[str]:
        prompt = self._prompt_tokens(messages)
        if len(prompt) + max_tokens > self._llm.n_ctx():
            raise ModelError(f"the prompt ({len(prompt)} tokens) does not fit the context ({self._llm.n_ctx()})")
        with self._lock:
            if aside:
                with self._main.kept_cache():
                    self._main.hold_fixed_part(prompt, self._fixed_part(messages, prompt))
                    yield from self._stream(prompt, max_tokens, temperature, generation, None)
            else:
                yield from self._stream(prompt, max_tokens, temperature, generation, contrast)

    def _fixed_part(self, messages: list[Message], prompt: list[int]) -> int:
        """How many leading tokens of the prompt come before its last message's content (at most
        all but one).

        A call aside evaluates its prompt from there, whatever the call before it left in the
        cache: where a batch starts changes how llama.cpp's sums round, and a scope judgement near
        a tie ("yes" and "no" 0.07 apart) went either way with the judgement asked before it."""
        emptied = self._prompt_tokens([*messages[:-1], {**messages[-1], "content": ""}])
        return min(len(os.path.commonprefix([prompt, emptied])), len(prompt) - 1)

    def _stream(
        self,
        prompt: list[int],
        max_tokens: int,
        temperature: float,
        generation: Generation | None,
        contrast: list[Message] | None,
    ) -> Iterator[str]:
        if contrast is not None and temperature == 0:
            yield from self._contrastive(prompt, contrast, max_tokens, generation)
            return
        pieces = _Pieces(self._llm, prompt, generation)
        logprobs: list[float] = []
        generator = self._llm.generate(prompt, temp=temperature, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.0)
        for token in generator:
            if self._main.is_end(token) or len(pieces.tokens) >= max_tokens:
                break
            # The logits that chose this token are still the context's last output.
            logprobs.append(log_softmax_at(self._main.last_logits(), token))
            if piece := pieces.add(token):
                yield piece
        generator.close()
        self._fill(generation, prompt, pieces.tokens, logprobs)

    def _contrastive(
        self, prompt: list[int], contrast: list[Message], max_tokens: int, generation: Generation | None
    ) -> Iterator[str]:
        """Greedy context-aware decoding (Shi et al. 2023) with AdaCAD's weight per token.

        Each token maximises (1+a)·logit(with passages) − a·logit(without), where a is the
        Jensen–Shannon divergence of the two next-token distributions (large where the passages
        change the model's mind, near 0 where they do not), among the tokens the full context itself
        finds plausible (at least PLAUSIBLE × the best one's probability). The context without
        passages runs in a second llama.cpp context, prefilled after the first token is shown so
        that time to first token stays that of one prompt; its log-probabilities are those the
        attribution needs for that context, so they are kept.
        """
        if self._plain is None:
            self._plain = LlamaInternals(self._open_context())
        main, second = self._main, self._plain
        plain_prompt = self._prompt_tokens(contrast)
        main.feed(prompt)
        pieces = _Pieces(self._llm, prompt, generation)
        tokens = pieces.tokens
        logprobs: list[float] = []
        plain_logprobs: list[float] = []
        full = main.last_logits()
        plain: np.ndarray | None = None
        while len(tokens) < max_tokens:
            token = int(np.argmax(full)) if plain is None else contrastive_choice(full, plain)
            if main.is_end(token):
                break
            if plain is None:  # the first token: now read the question without the passages
                second.feed(plain_prompt)
                plain = second.last_logits()
            logprobs.append(log_softmax_at(full, token))
            plain_logprobs.append(log_softmax_at(plain, token))
            if piece := pieces.add(token):
                yield piece
            if len(tokens) >= max_tokens:
                break
            main.llm.eval([token])
            second.llm.eval([token])
            full, plain = main.last_logits(), second.last_logits()
        self._fill(generation, prompt, tokens, logprobs, contrast, plain_logprobs)

    def _fill(
        self,
        generation: Generation | None,
        prompt: list[int],
        tokens: list[int],
        logprobs: list[float],
        contrast: list[Message] | None = None,
        contrast_logprobs: list[float] | None = None,
    ) -> None:
        """Complete a finished generation: each token's text and log-probability (and under the
        messages without passages, for context-aware decoding)."""
        if generation is None:
            return
        pieces = self._pieces(prompt, tokens)
        generation.scored = list(zip(pieces, logprobs, strict=True))
        if contrast is not None and contrast_logprobs is not None:
            generation.contrast = contrast
            generation.contrast_scored = list(zip(pieces, contrast_logprobs, strict=True))
        generation.tokens = tokens
        generation.complete = True

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def token_logprobs(
        self, messages: list[Message], answer: str, *, generation: Generation | None = None
    ) -> TokenLogprobs:
        own = generation.logprobs_for(messages, answer) if generation else None
        if own is not None:  # read while generating
            return own
        with self._lock:
            prompt = self._prompt_tokens(messages)
            if generation is not None and generation.complete and generation.text == answer:
                tokens = list(generation.tokens)  # the answer's own tokens, not a re-tokenization
            else:
                tokens = list(self._llm.tokenize(answer.encode("utf-8"), add_bos=False, special=False))
            return list(zip(self._pieces(prompt, tokens), self._score(prompt, tokens), strict=True))

    def _pieces(self, prompt: list[int], tokens: list[int]) -> list[str]:
        return [
            self._llm.detokenize([t], prev_tokens=prompt + tokens[:i]).decode("utf-8", "replace")
            for i, t in enumerate(tokens)
        ]

    def _score(self, prompt: list[int], tokens: list[int]) -> list[float]:
        """log p(tokens | prompt), reusing the cached prefix and asking llama.cpp only for needed logits."""
        main, n_batch = self._main, self._llm.n_batch
        sequence = prompt + tokens
        if len(sequence) > self._llm.n_ctx():
            raise ModelError(f"{len(sequence)} tokens do not fit the context ({self._llm.n_ctx()})")
        start = min(main.cached_prefix(sequence), len(prompt) - 1)  # the logits before the first answer token
        main.forget_from(start)
        logprobs: list[float] = []
        for begin in range(start, len(sequence) - 1, n_batch):
            chunk = sequence[begin : min(begin + n_batch, len(sequence) - 1)]
            wanted = [begin + i >= len(prompt) - 1 for i in range(len(chunk))]
            main.decode(chunk, begin, wanted)
            for i in (i for i, want in enumerate(wanted) if want):
                logprobs.append(log_softmax_at(main.output_logits(i), sequence[begin + i + 1]))
        return logprobs


PLAUSIBLE = 0.1  # context-aware decoding picks among tokens at least this share of the best one's probability


def contrastive_choice(full: np.ndarray, plain: np.ndarray) -> int:
    """The token context-aware decoding picks from the next-token logits with and without passages."""
    log_full = full - full.max() - np.log(np.exp(full - full.max()).sum())
    log_plain = plain - plain.max() - np.log(np.exp(plain - plain.max()).sum())
    p_full, p_plain = np.exp(log_full), np.exp(log_plain)
    log_mean = np.log(np.maximum(0.5 * (p_full + p_plain), 1e-30))
    divergence = 0.5 * float(p_full @ (log_full - log_mean)) + 0.5 * float(p_plain @ (log_plain - log_mean))
    weight = min(max(divergence / np.log(2), 0.0), 1.0)  # in bits: 0 (same belief) to 1
    scores = (1 + weight) * full - weight * plain
    scores[p_full < PLAUSIBLE * p_full.max()] = -np.inf
    return int(np.argmax(scores))


def _token_pairs(choice: dict[str, Any]) -> list[tuple[str, Any]]:
    """The (token, log-probability) pairs of an OpenAI completion choice; a value may be None."""
    logprobs = choice.get("logprobs") or {}
    return list(zip(logprobs.get("tokens") or [], logprobs.get("token_logprobs") or [], strict=False))


def chatml(messages: list[Message]) -> str:
    """Messages in ChatML, the default model's chat template, ready for the assistant's turn. The
    server tokenizes the whole prompt, so markup inside a message is made visible text first."""
    turns = "".join(f"<|im_start|>{m['role']}\n{neutralise_markup(m['content'])}<|im_end|>\n" for m in messages)
    return turns + "<|im_start|>assistant\n"


class ServerPromptFormat:
    """How prompts are written for an LLM server: ChatML, or the chat template of the GGUF file
    the server runs (read from its metadata; no weights are loaded). The server tokenizes the
    whole prompt, so markup inside a message is made visible text first."""

    def __init__(self, template: str = "chatml") -> None:
        self.stop = ["<|im_end|>"]
        self._format: Any = None
        self._bos = ""
        if template == "chatml":
            return
        path = Path(template)
        if path.suffix.lower() != ".gguf" or not path.is_file():
            raise ModelError(f"llm_template must be chatml or the path of a GGUF file, not {template!r}")
        try:
            from llama_cpp import Llama
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            vocabulary = Llama(model_path=str(path), vocab_only=True, verbose=False)
        except (ImportError, ValueError, RuntimeError) as exc:
            raise ModelError(f"cannot read the chat template of {path}: {exc}") from None
        chat_template = vocabulary.metadata.get("tokenizer.chat_template")
        if not chat_template:
            raise ModelError(f"{path} has no chat template in its metadata")

        def piece(token: int) -> str:
            return str(vocabulary.detokenize([token], special=True).decode("utf-8", "replace"))

        eos, self._bos = piece(vocabulary.token_eos()), piece(vocabulary.token_bos())
        self._format = Jinja2ChatFormatter(template=chat_template, eos_token=eos, bos_token=self._bos)
        self.stop = [eos]

    def __call__(self, messages: list[Message]) -> str:
        if self._format is None:
            return chatml(messages)
        visible = [{**m, "content": neutralise_markup(m["content"])} for m in messages]
        prompt = str(self._format(messages=cast(Any, visible)).prompt)
        # The server puts the model's BOS token in front itself; a template's own would be a second.
        return prompt.removeprefix(self._bos) if self._bos else prompt


def estimate_tokens(text: str) -> int:
    """Tokens a text costs when the server cannot say: about 4 characters a token."""
    return len(text) // 4 + 1


@dataclass(frozen=True)
class TokenizerRoute:
    """A server route that counts a text's tokens with the model's own tokenizer."""

    name: str
    path: str  # from the server's root (the URL without its /v1)
    body: Any  # (text, model) -> the JSON body


TOKENIZER_ROUTES = (
    # llama-cpp-python's server: {"input"} -> {"count"}, so no token list crosses the wire.
    TokenizerRoute("llama-cpp-python", "/extras/tokenize/count", lambda text, model: {"input": text, "model": model}),
    # llama.cpp's server (llama-server): {"content"} -> {"tokens": [...]}.
    TokenizerRoute("llama.cpp", "/tokenize", lambda text, model: {"content": text, "add_special": False}),
    # vLLM: {"model", "prompt"} -> {"count", "tokens"}.
    TokenizerRoute(
        "vLLM", "/tokenize", lambda text, model: {"model": model, "prompt": text, "add_special_tokens": False}
    ),
)


class TokenizerError(Exception):
    """A tokenizer route answered something that is not a token count."""


class ServerTokenizer:
    """Counts tokens with the LLM server's own tokenizer, so that passage_token_budget means the same
    number of model tokens as with the in-process model.

    The route is found once, when the tutor starts (the first of TOKENIZER_ROUTES that counts a probe
    text plausibly); counts are cached by text, since the same passages come back question after
    question, so a question costs a few loopback requests the first time and none after. A route that
    fails later, or answers something that is not a count, is not trusted for a minute: the estimate
    (4 characters a token) stands in, with a warning, and the answer goes on.
    """

    PROBE = "How many tokens does the server's tokenizer find in this sentence?"
    CACHE = 4096  # texts remembered
    TIMEOUT = 5.0  # seconds; counting must never hold an answer long
    PAUSE = 60.0  # seconds without asking after a failure

    def __init__(self, http: Any, url: str, model: str) -> None:
        self._http, self._url, self._model = http, url, model
        self._root = url.removesuffix("/v1")
        self._cache: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()
        self._paused_until = 0.0
        self.route: TokenizerRoute | None = None
        self._baseline = 0  # tokens the route adds to any text (a BOS token), taken off every count
        tried = []
        for route in TOKENIZER_ROUTES:
            try:
                self._baseline = 0
                baseline = self._ask(route, "")
                self._baseline = baseline
                if self._ask(route, self.PROBE) > 0:
                    self.route = route
                    break
            except TokenizerError as exc:
                tried.append(f"{route.name}: {exc}")
        if self.route is None:
            LOG.warning(
                "the LLM server at %s has no tokenizer route the tutor knows (%s); passage_token_budget is "
                "counted as 4 characters a token there",
                url,
                "; ".join(tried),
            )

    def _ask(self, route: TokenizerRoute, text: str) -> int:
        """The route's count of the text's tokens, or TokenizerError: no answer is taken on trust."""
        import httpx

        limit = 4096 + 16 * len(text.encode("utf-8"))  # a token list several times the text's size is no count
        try:
            body = route.body(text, self._model)
            with self._http.stream("POST", self._root + route.path, json=body, timeout=self.TIMEOUT) as reply:
                if reply.status_code != 200:
                    raise TokenizerError(f"answered {reply.status_code}")
                data = b""
                for piece in reply.iter_bytes():
                    data += piece
                    if len(data) > limit:
                        raise TokenizerError(f"answered more than {limit} bytes")
        except httpx.HTTPError as exc:
            raise TokenizerError(f"not reachable ({type(exc).__name__})") from None
        try:
            body = json.loads(data)
        except ValueError:
            raise TokenizerError("answered something that is not JSON") from None
        if not isinstance(body, dict):
            raise TokenizerError("answered JSON that is not an object")
        count = body.get("count")
        tokens = body.get("tokens")
        if isinstance(tokens, list) and all(type(t) is int for t in tokens) and (count is None or count == len(tokens)):
            count = len(tokens)
        if type(count) is not int:
            raise TokenizerError("answered neither a count nor a list of token ids")
        count -= self._baseline
        if not 0 <= count <= len(text.encode("utf-8")) + 1:  # a token is at least a byte of the text
            raise TokenizerError(f"answered an implausible count ({count + self._baseline})")
        return count

    def count(self, text: str) -> int:
        with self._lock:
            if text in self._cache:
                self._cache.move_to_end(text)
                return self._cache[text]
        if self.route is None or time.monotonic() < self._paused_until:
            return estimate_tokens(text)
        try:
            count = self._ask(self.route, text)
        except TokenizerError as exc:
            self._paused_until = time.monotonic() + self.PAUSE
            LOG.warning(
                "the LLM server's tokenizer (%s) %s; tokens are estimated as 4 characters each for %.0f s",
                self.route.name,
                exc,
                self.PAUSE,
            )
            return estimate_tokens(text)
        with self._lock:
            self._cache[text] = count
            while len(self._cache) > self.CACHE:
                self._cache.popitem(last=False)
        return count


class OpenAIChat:
    """A model behind an OpenAI-compatible server: llama.cpp's server, llama-cpp-python's, vLLM.

    Both generating and scoring use /v1/completions with a prompt formatted here (ChatML, or the
    template of the GGUF file the server runs: `llm_template`), so that
    they see the same tokens: the log-probabilities of a generated answer come with its tokens.
    An answer is scored under another prompt by sending prompt + answer with `echo` and `logprobs`
    (vLLM), or, where echoed log-probabilities are wrong, by generating it again under a grammar
    that allows only its text (llama.cpp's and llama-cpp-python's servers). The server must return
    log-probabilities (llama-cpp-python's: `--logits_all true`).
    """

    def __init__(
        self,
        url: str,
        *,
        model: str | None = None,
        timeout: float = 120.0,
        tokenizer: str = "auto",
        template: str = "chatml",
    ) -> None:
        import httpx

        self.prompt = ServerPromptFormat(template)
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout)
        self._model = model or self._first_model()
        self.name = Path(self._model).stem or self._model
        # "auto": the server's own tokenizer where it has a known route; "estimate": 4 characters a token.
        self.tokenizer = ServerTokenizer(self._http, self.url, self._model) if tokenizer == "auto" else None
        self._scoring: str | None = None  # "echo" or "forced", chosen on the first answer scored
        self._scoring_error: ModelError | None = None  # why neither can be trusted, once found

    def _request(self, body: dict[str, Any]) -> dict[str, Any]:
        import httpx

        try:
            response = self._http.post("/completions", json={"model": self._model, **body})
        except httpx.HTTPError as exc:
            raise ModelError(f"the LLM server at {self.url} is not reachable: {exc}") from None
        if response.status_code != 200:
            raise self._refusal(response)
        return dict(response.json())

    def _refusal(self, response: Any) -> ModelError:
        return ModelError(f"the LLM server at {self.url} answered {response.status_code}: {response.text[:200]}")

    def _first_model(self) -> str:
        import httpx

        try:
            models = self._http.get("/models").json()["data"]
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            raise ModelError(f"the LLM server at {self.url} is not reachable: {exc}") from None
        if not models:
            raise ModelError(f"the LLM server at {self.url} serves no model")
        return str(models[0]["id"])

    def stream(
        self,
        messages: list[Message],
        *,
        max_tokens: int,
        temperature: float,
        generation: Generation | None = None,
        contrast: list[Message] | None = None,  # no context-aware decoding on a server: ignored
        aside: bool = False,  # the server keeps its own caches: ignored
    ) -> Iterator[str]:
        import httpx

        prompt = self.prompt(messages)
        body = {
            "model": self._model,
            "prompt": prompt,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "logprobs": 1,
            "stream": True,
            "stop": self.prompt.stop,
        }
        text, scored = "", []
        try:
            with self._http.stream("POST", "/completions", json=body) as response:
                if response.status_code != 200:
                    response.read()
                    raise self._refusal(response)
                for line in response.iter_lines():
                    if not line.startswith("data:") or line.strip() == "data: [DONE]":
                        continue
                    choice = json.loads(line[5:])["choices"][0]
                    scored += _token_pairs(choice)
                    if choice.get("text"):
                        text += choice["text"]
                        if generation is not None:
                            generation.text = text
                        yield choice["text"]
        except httpx.HTTPError as exc:
            raise ModelError(f"the LLM server at {self.url} failed mid-answer: {exc}") from None
        if generation is not None and "".join(token for token, _ in scored) == text:
            generation.scored = [(token, float(lp)) for token, lp in scored]
            generation.complete = True

    def count_tokens(self, text: str) -> int:
        """The server's count of the text's tokens (cached), or the estimate where it cannot say. Markup
        is counted as the visible text it is sent as."""
        return self.tokenizer.count(neutralise_markup(text)) if self.tokenizer else estimate_tokens(text)

    def token_logprobs(
        self, messages: list[Message], answer: str, *, generation: Generation | None = None
    ) -> TokenLogprobs:
        own = generation.logprobs_for(messages, answer) if generation else None
        if own is not None:
            if self._scoring is None:
                self._pick_scoring((self.prompt(messages), answer, own))
            return own
        prompt = self.prompt(messages)
        return self._echoed(prompt, answer) if self._scoring == "echo" else self._forced(prompt, answer)

    def _pick_scoring(self, generated: tuple[str, str, TokenLogprobs]) -> None:
        """Echo if the server's echoed log-probabilities agree with those it generated with, else
        forced decoding. llama-cpp-python's server (0.3.x) reports each echoed token's probability
        one position late; scores from it would be meaningless."""
        if self._scoring_error:
            raise self._scoring_error
        prompt, answer, expected = generated
        for method in (self._echoed, self._forced):
            scored = method(prompt, answer)
            gaps = [abs(a - b) for (_, a), (_, b) in zip(scored, expected, strict=False)]
            if len(scored) == len(expected) and sum(gaps) / max(len(gaps), 1) < 0.2:
                self._scoring = "echo" if method == self._echoed else "forced"
                return
        self._scoring_error = ModelError(
            f"the LLM server at {self.url} gives log-probabilities for a given answer that disagree with "
            "those it generated it with, so answers cannot be scored there; use TUTOR_ATTRIBUTION=off"
        )
        raise self._scoring_error

    def _forced(self, prompt: str, answer: str) -> TokenLogprobs:
        """The answer generated again under a grammar that allows only its own text: the server's
        log-probabilities of generated tokens are read before the grammar narrows the choice."""
        literal = answer.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
        reply = self._request(
            {
                "prompt": prompt,
                "grammar": f'root ::= "{literal}"',
                "max_tokens": len(answer) + 8,
                "temperature": 0,
                "logprobs": 1,
            }
        )
        choice = reply["choices"][0]
        pairs = _token_pairs(choice)
        if choice.get("text") != answer or not pairs:
            raise ModelError(f"the LLM server at {self.url} did not follow the grammar that forces the answer")
        return [(token, float(value)) for token, value in pairs]

    def _echoed(self, prompt: str, answer: str) -> TokenLogprobs:
        reply = self._request(
            {"prompt": prompt + answer, "max_tokens": 1, "temperature": 0, "echo": True, "logprobs": 1}
        )
        pairs = _token_pairs(reply["choices"][0])
        if not pairs:
            raise ModelError(f"the LLM server at {self.url} returned no log-probabilities for the prompt")
        pairs = pairs[: reply.get("usage", {}).get("prompt_tokens", len(pairs))]
        # The answer's tokens are the last ones of the echoed prompt whose text makes up the answer.
        taken, length = [], 0
        for token, value in reversed(pairs):
            if length >= len(answer):
                break
            taken.append((token, float(value if value is not None else 0.0)))
            length += len(token)
        return taken[::-1]
