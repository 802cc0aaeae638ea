"""One settings object. Resolution order: flag > TUTOR_* environment variable > tutor.toml > default.

The TOML file is `tutor.toml` in the working directory, or the file named by TUTOR_CONFIG.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from .errors import ConfigError

# A list setting reads "a, b" from the environment as well as a TOML array.
CommaList = Annotated[list[str], NoDecode]
K_MIN, K_MAX = 1, 20  # the range of k (most passages in a prompt), for the settings and every request


def json_integer(value: Any) -> Any:
    """A request's integer as a JSON schema takes it: pydantic would take `true` as 1 and "2" as 2,
    the schema neither (7.0 it does, so not strict). A "before" validator for every door's integers."""
    if isinstance(value, bool | str):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


# k in every door (JSON API, OpenAI-compatible, MCP): a JSON integer from K_MIN to K_MAX, or none.
PassageCount = Annotated[Annotated[int, Field(ge=K_MIN, le=K_MAX)] | None, BeforeValidator(json_integer)]

# Where the packaged models' measured bands differ: scope_judge_below for each `model`, used when
# the setting is not given. The 0.5B model says "no" to more questions in scope near 0.35; asked only
# under 0.30 it kept its off-topic flags and answered more (hold-out 274 -> 283 of 388 facts,
# docs/evaluation.md).
SCOPE_JUDGE_BELOW = {"default": 0.35, "fast": 0.30}


def _default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tutor"


class Settings(BaseSettings):
    """Every setting of the tutor, with its default and what it is for."""

    model_config = SettingsConfigDict(env_prefix="TUTOR_", extra="forbid", frozen=True)

    # Where things are.
    corpus_dir: Path = Field(Path("corpus"), description="Folder of guides that `tutor ingest` reads by default.")
    index_dir: Path = Field(Path("index"), description="Folder of the persisted Chroma index (built, not committed).")
    chroma_url: str | None = Field(None, description="A Chroma server (http://HOST:PORT, `chroma run`) holding the index instead of index_dir; tutors pointed at it share one index.")
    prompts_dir: Path = Field(Path("prompts"), description="Folder of system prompt presets (*.md).")
    data_dir: Path = Field(Path("data"), description="Where the UI keeps local records: feedback.jsonl.")
    cache_dir: Path = Field(default_factory=_default_cache_dir, description="Where the joined packaged model files (and the unpacked embedding model) are kept.")

    # Models.
    model: Literal["default", "fast"] = Field("default", description="The packaged chat model: default (Qwen2.5-Coder-1.5B-Instruct, reads its passages best) or fast (Qwen2.5-Coder-0.5B-Instruct, about half the time per token, for small machines).")
    model_path: Path | None = Field(None, description="A GGUF chat model to use instead of the packaged one named by model.")
    model_sha256: str | None = Field(None, description="Expected SHA-256 of model_path; checked before loading when set.")
    embed_model: str | None = Field(None, description="The sentence-transformers model: default (all-mpnet-base-v2 from its packages, finds the answering passage more often), minilm (all-MiniLM-L6-v2 from its package, about five times cheaper an embedding, for large corpora), or a model folder or hub name.")
    llm_url: str | None = Field(None, description="An OpenAI-compatible server (…/v1) to generate and score with, instead of the in-process model; it must return logprobs.")
    llm_model: str | None = Field(None, description="The model name to ask llm_url for; default: the first it lists.")
    llm_server_tokenizer: Literal["auto", "estimate"] = Field("auto", description="How tokens are counted for llm_url (passage and history budgets): auto asks the server's own tokenizer (llama-cpp-python's /extras/tokenize/count, llama.cpp's or vLLM's /tokenize), found once at start, else estimates; estimate counts 4 characters a token.")
    llm_template: str = Field("chatml", description="How prompts are written for llm_url: chatml (the Qwen models this tutor ships), or the path of the GGUF file the server runs, whose own chat template and end-of-turn token are then used.")
    n_ctx: int = Field(4096, ge=512, description="Context window of the chat model, in tokens.")
    n_threads: int | None = Field(None, ge=1, description="CPU threads for the chat model; default: all cores.")
    flash_attention: bool = Field(True, description="Run the in-process model's attention with llama.cpp's flash-attention kernels: prefill 4 to 9% faster on 2 cores, decoding the same (benchmarks/bench_prefill.py).")

    # Retrieval.
    k: int = Field(3, ge=K_MIN, le=K_MAX, description="Most passages put in the prompt.")
    lexical_weight: float = Field(0.4, ge=0.0, le=2.0, description="Weight of BM25 (exact words) beside vector similarity when ranking; 0 ranks by vectors alone.")
    sentence_weight: float = Field(0.0, ge=0.0, le=1.0, description="Share of a passage's ranking similarity taken from its best sentence's cosine to the question, the rest from the whole chunk's; 0 ranks by chunks alone.")
    scope_judge_below: float = Field(SCOPE_JUDGE_BELOW["default"], ge=0.0, le=1.0, description="A question whose best passage scores below this (and has none holding all its words) is put to the model with the passages' three sentences that best answer it, and the model says whether they are about what it asks; 0 never asks. Default 0.35, or 0.30 with model fast (and neither model_path nor llm_url).")
    own_topic_score: float = Field(0.35, ge=0.0, le=1.0, description="Mid-conversation, a question of two words or fewer whose words alone find a passage this similar is a question of its own, searched alone (\"What is fine-tuning?\"); under it, a follow-up searched with the turn before it (\"How long?\").")
    min_score: float = Field(0.20, ge=0.0, le=1.0, description="When no passage reaches this cosine similarity to the question (and none holds all its words), the question is out of scope.")
    score_margin: float = Field(0.35, ge=0.0, le=2.0, description="Passages ranking more than this below the best one are left out of the prompt.")
    passage_token_budget: int = Field(260, ge=50, description="Most tokens of passages put in the prompt (every prompt token costs prefill time).")
    correct_spelling: bool = Field(True, description="Search and judge a question with its typing slips corrected towards the guides' words, leaving alone what an English dictionary knows (\"moedl\" -> \"model\"); the model reads it as typed.")
    widen_passages: bool = Field(True, description="Join the best passage to the chunks before and after it in its section, any other passage cut inside a list to the chunk after it, and chosen chunks that touch, while passage_token_budget lasts.")
    figure_aware_ranking: bool = Field(True, description="Rank higher the passages that give the kind of figure the question asks for (a duration for \"how long\", a cost for \"how expensive\").")
    passage_headings: bool = Field(False, description="Open each passage in the prompt with its guide and section heading.")
    evidence_sentence: bool = Field(False, description="Quote the passages' sentence that best answers the question after the passages, where the model reads it last.")
    quote_guides: bool = Field(True, description="Quote, under the answer, the guides' sentence that best answers the question, and the runner-up when it scores within 0.10 of it and the answer stays within 80 words (each unless the answer already says it; then the sentence after it that leans on it, where there is one).")
    check_stance: bool = Field(True, description="Check an answer that opens with Yes or No (or says it in other words, repeating the question's claim) against the guides' sentence that best answers the question, read alone by the model, and replace its opening sentence by the guides' answer where they disagree.")
    context_aware_decoding: bool = Field(False, description="Choose each token for what the passages add to the model's belief (context-aware decoding with an adaptive weight; in-process model only).")
    chunk_size: int = Field(400, ge=100, description="Largest chunk, in characters.")
    chunk_overlap: int = Field(60, ge=0, description="Characters shared by neighbouring chunks of one section.")

    # Generation.
    preset: str = Field("tutor", description="Default system prompt preset (a file name in prompts_dir, without .md).")
    max_answer_tokens: int = Field(160, ge=16, description="Most tokens generated for one answer.")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="Sampling temperature; 0 answers deterministically.")
    max_question_chars: int = Field(2000, ge=10, description="Longest question accepted, in characters.")
    max_history_turns: int = Field(6, ge=0, description="Most earlier turns sent to the model with a follow-up.")
    history_token_budget: int = Field(1000, ge=0, description="Most tokens of earlier turns sent to the model; older turns beyond it are left out (the answer says so).")

    # Explanation.
    attribution: Literal["layered", "shapley", "off"] = Field("layered", description="Layer attribution: layered (2 scoring passes), shapley (3, symmetric between prompt and passages) or off.")

    # Serving (`tutor serve`).
    auth_token: SecretStr | None = Field(None, description="When set, every route but /healthz and /readyz needs `Authorization: Bearer TOKEN` (the page asks for it once).")
    trusted_user_header: str | None = Field(None, description="A header naming the user, set by an SSO proxy (e.g. X-Forwarded-User); trusted only from trusted_proxies, and then no token is needed.")
    trusted_proxies: CommaList = Field(["127.0.0.1", "::1"], description="Addresses or networks (comma-separated) whose trusted_user_header is believed.")
    open_access: bool = Field(False, description="Allow serving on a non-loopback address with neither auth_token nor trusted_user_header.")
    cors_origins: CommaList = Field([], description="Origins (comma-separated) whose pages may call the API from the browser; none by default.")
    frame_ancestors: CommaList = Field(["'self'"], description="Origins (comma-separated) whose pages may embed the tutor in a frame (CSP frame-ancestors).")
    max_waiting: int = Field(16, ge=0, description="Questions that may wait for the model; one more is refused as busy.")
    llm_parallel: int = Field(4, ge=1, description="Generations sent to llm_url at once (the in-process model runs one).")
    max_request_bytes: int = Field(2097152, ge=1024, description="Largest request body accepted, in bytes (a question over max_question_chars but under this gets its own clear message).")
    log_questions: bool = Field(False, description="Put the question text in the request log lines.")

    @model_validator(mode="before")
    @classmethod
    def _packaged_model_defaults(cls, data: Any) -> Any:
        """The packaged model's own scope_judge_below where none is given (SCOPE_JUDGE_BELOW); a
        model file or server of one's own, or a wrong model name, is left to the field's default."""
        if not isinstance(data, dict) or data.get("scope_judge_below") is not None:
            return data
        model = data.get("model", "default")
        if data.get("model_path") or data.get("llm_url") or not isinstance(model, str) or model not in SCOPE_JUDGE_BELOW:
            return data
        return {**data, "scope_judge_below": SCOPE_JUDGE_BELOW[model]}

    @field_validator("cors_origins", "frame_ancestors", "trusted_proxies", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        return [part.strip() for part in value.split(",") if part.strip()] if isinstance(value, str) else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = Path(os.environ.get("TUTOR_CONFIG", "tutor.toml"))
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file))


def load_settings(**overrides: Any) -> Settings:
    """Resolve the settings; `overrides` are command-line flags (None means not given)."""
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from None
    except (OSError, ValueError) as exc:  # an unreadable or malformed tutor.toml
        raise ConfigError(f"cannot read settings: {exc}") from None
