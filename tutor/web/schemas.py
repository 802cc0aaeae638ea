"""What the JSON API takes and what its refusals look like: the request body of /api/ask with this
server's limits and presets in its schema, and the documented refusals. The answer it returns is
the core's contract (tutor.contract)."""

# No `from __future__ import annotations` here: the request model is built at runtime with pydantic
# (its limits and preset names come from the settings), and FastAPI reads the annotations.
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator
from pydantic_core import PydanticCustomError

from ..config import PassageCount
from ..markers import NOT_TEXT

# Plain text with at least one character that is not a space (the rule of answer.check_question);
# a turn of the history may be blank. The schema shows the patterns; the validators check them,
# and lone surrogates (what Python makes of bytes that are not UTF-8) too, in plain words.
_CONTROL = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f"
PLAIN_TEXT = f"^[^{_CONTROL}]*[^\\s{_CONTROL}][^{_CONTROL}]*$"
TURN_TEXT = f"^[^{_CONTROL}]*$"
NOT_TEXT_SAID = "not plain text: it has control characters (such as NUL), binary data or invalid UTF-8"
# An assistant turn is an answer of at most max_answer_tokens tokens; a token of English text is
# about 4 characters, and 16 leaves room for long ones (runs of spaces, code) and citation marks.
ANSWER_CHARS_PER_TOKEN = 16
HISTORY_LIMIT = 100  # turns a request may carry; more is a client bug, not a conversation


class AskFields(BaseModel):
    """What /api/ask takes; `ask_request_model` adds this server's limits and preset names."""

    model_config = ConfigDict(extra="forbid")

    question: str
    history: list[tuple[str, str]] = Field(default_factory=list)
    preset: str | None = None
    retrieval: bool = True
    k: PassageCount = None

    @field_validator("question")
    @classmethod
    def _question_is_plain_text(cls, value: str) -> str:
        """Checked here rather than by the schema's pattern, whose refusal would quote the regex."""
        if not value.strip():
            raise PydanticCustomError("blank", "only spaces: write a question")
        if NOT_TEXT.search(value):
            raise PydanticCustomError("not_text", NOT_TEXT_SAID)
        return value

    @field_validator("history")
    @classmethod
    def _turns_are_plain_text(cls, value: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """A lone surrogate reached the model's tokenizer and failed there (a 500); refused here."""
        for n, turn in enumerate(value):
            for side, text in zip(("user", "assistant"), turn, strict=True):
                if NOT_TEXT.search(text):
                    said = "turn {n}, {side} side: " + NOT_TEXT_SAID
                    raise PydanticCustomError("not_text", said, {"n": n, "side": side})
        return value


def ask_request_model(max_question_chars: int, max_answer_chars: int, presets: list[str]) -> type[AskFields]:
    """The request of /api/ask, with the limits and presets of this server in its schema."""
    user_turn = Annotated[str, Field(max_length=max_question_chars, json_schema_extra={"pattern": TURN_TEXT})]
    assistant_turn = Annotated[str, Field(max_length=max_answer_chars, json_schema_extra={"pattern": TURN_TEXT})]
    fields: dict[str, Any] = {
        "question": (
            str,
            Field(
                min_length=1,
                max_length=max_question_chars,
                json_schema_extra={"pattern": PLAIN_TEXT},
                description="The question: plain text (no control characters), not blank, at most "
                "max_question_chars characters.",
            ),
        ),
        "history": (
            list[tuple[user_turn, assistant_turn]],  # type: ignore[valid-type]
            Field(
                default_factory=list,
                max_length=HISTORY_LIMIT,
                description="Earlier turns as [user, assistant], plain text: a user turn at most max_question_chars "
                f"characters, an assistant turn at most {max_answer_chars} ({ANSWER_CHARS_PER_TOKEN} for each token of "
                "max_answer_tokens). The model reads the last max_history_turns that fit in history_token_budget.",
            ),
        ),
        "preset": (
            Literal[tuple(presets)] | None,
            Field(None, description="A system prompt preset; `none` for a neutral one; default: the server's."),
        ),
        # Strict: pydantic would otherwise take "yes" as true, which the schema refuses.
        "retrieval": (bool, Field(True, strict=True, description="Use passages from the guides.")),
        "k": (PassageCount, Field(None, description="Most passages in the prompt.")),
    }
    return create_model("AskRequest", __base__=AskFields, **fields)


class ErrorBody(BaseModel):
    """What every refused request gets: one line saying why."""

    error: str


REFUSALS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The question cannot be asked."},
    401: {"model": ErrorBody, "description": "A token is needed (TUTOR_AUTH_TOKEN is set)."},
    413: {"model": ErrorBody, "description": "The request body is over max_request_bytes."},
    422: {
        "model": ErrorBody,
        "description": "The request does not fit the schema (blank question, unknown preset...).",
    },
    503: {"model": ErrorBody, "description": "The line of waiting questions is full, or the index is unavailable."},
}


def ask_options(request: AskFields) -> dict[str, Any]:
    """The request's choices, as Tutor.stream takes them."""
    return {"preset": request.preset, "retrieval": request.retrieval, "k": request.k}
