"""The shim in front of llama-cpp-python's internals refuses what it was not tested with, clearly."""

from __future__ import annotations

import re
import tomllib
from types import SimpleNamespace

import llama_cpp
import pytest

from tutor.errors import ModelError
from tutor.llama_shim import REQUIRED, TESTED_VERSIONS, LlamaInternals, check_version, missing_internals

from .conftest import ROOT


def test_the_tested_range_is_the_pin_in_pyproject() -> None:
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (pin,) = [p for p in pins if p.startswith("llama-cpp-python")]
    assert pin == f"llama-cpp-python=={TESTED_VERSIONS[0]}"
    check_version(llama_cpp.__version__)  # the installed one passes


@pytest.mark.parametrize("version", ["0.3.35", "0.3.37", "0.4.0", "1.0", "0.2.90"])
def test_an_untested_version_is_refused_naming_it(version: str) -> None:
    with pytest.raises(ModelError, match=rf"llama-cpp-python {re.escape(version)} is installed.*>=0\.3\.36,<0\.3\.37"):
        check_version(version)


@pytest.mark.parametrize("version", ["", "dev", "unknown", "v0.3.36"])
def test_an_unreadable_version_is_refused(version: str) -> None:
    with pytest.raises(ModelError, match="unreadable version"):
        check_version(version)


def test_a_release_candidate_of_the_tested_version_passes() -> None:
    check_version("0.3.36rc1")


def test_an_object_lacking_the_internals_is_refused_naming_each() -> None:
    with pytest.raises(ModelError, match="lacks internals the tutor reads: " + re.escape(", ".join(REQUIRED))):
        LlamaInternals(object(), version=TESTED_VERSIONS[0])


def test_a_partial_object_names_only_what_is_missing() -> None:
    ctx = SimpleNamespace(decode=print, get_logits_ith=print, ctx=None)  # kv_cache_seq_rm is gone
    batch = SimpleNamespace(batch=SimpleNamespace(n_tokens=0, token=[], pos=[], seq_id=[], n_seq_id=[]))  # no logits

    class Fake:
        _ctx, _batch, input_ids, n_tokens, n_batch = ctx, batch, [], 0, 512
        _model = SimpleNamespace(vocab=None)

        @property
        def _input_ids(self) -> list[int]:
            raise AttributeError("renamed")

        def n_vocab(self) -> int:
            return 1

        def eval(self, tokens: list[int]) -> None:
            pass

    assert missing_internals(Fake()) == ["_ctx.kv_cache_seq_rm", "_input_ids", "_batch.batch.logits"]
    expected = "0.3.36 lacks internals the tutor reads: _ctx.kv_cache_seq_rm, _input_ids, _batch.batch.logits;"
    with pytest.raises(ModelError, match=re.escape(expected)):
        LlamaInternals(Fake(), version="0.3.36")


def test_the_version_is_checked_before_the_attributes() -> None:
    with pytest.raises(ModelError, match="llama-cpp-python 0.4.0 is installed"):
        LlamaInternals(object(), version="0.4.0")
