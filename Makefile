# One task runner. `make start` and `make test` are the README's quick start.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: install start test test-fast lint bench eval
# The browser test drives Debian's Chromium through Playwright (Playwright's own browser download
# cannot work here), and the proxy test puts Debian's nginx in front. Installed once if missing.
CHROMIUM ?= /usr/bin/chromium
NGINX ?= /usr/sbin/nginx
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# llama-cpp-python compiles for minutes the first time; pip keeps the built wheel in its cache.
	$(BIN)/python -m pip install --quiet -e ".[test]"
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

start: $(STAMP)
	TRANSFORMERS_VERBOSITY=error $(BIN)/tutor serve

$(CHROMIUM):
	$(SUDO) apt-get install -y --no-install-recommends chromium || \
	  ($(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends chromium)

$(NGINX):
	$(SUDO) apt-get install -y --no-install-recommends nginx || \
	  ($(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends nginx)

test: $(STAMP) $(CHROMIUM) $(NGINX) lint
	TRANSFORMERS_VERBOSITY=error $(BIN)/python -m pytest

# The loop while coding: no real model, no servers, no browser (the full run stays in CI).
test-fast: $(STAMP) lint
	$(BIN)/python -m pytest -m "not slow" -q

lint: $(STAMP)
	$(BIN)/ruff check tutor tests benchmarks
	$(BIN)/mypy tutor benchmarks

bench: $(STAMP)
	TRANSFORMERS_VERBOSITY=error $(BIN)/python benchmarks/bench_core.py
	TRANSFORMERS_VERBOSITY=error $(BIN)/python benchmarks/bench_layers.py
	TRANSFORMERS_VERBOSITY=error $(BIN)/python benchmarks/bench_load.py
	TRANSFORMERS_VERBOSITY=error $(BIN)/python benchmarks/bench_prefill.py
	TRANSFORMERS_VERBOSITY=error $(BIN)/python benchmarks/bench_plain_loop.py ../shared/eval/paraphrase_questions.jsonl --half tune

# `make eval HALF=tune` while tuning: the hold-out half is then never answered. Each run's answers
# go to their own folder (RUN), one file a set: `tutor compare eval/runs/before eval/runs/after`.
HALF ?= all
RUN ?= eval/runs/latest
eval: $(STAMP)
	$(BIN)/tutor ingest
	mkdir -p $(RUN)
	$(BIN)/tutor eval eval/questions.jsonl --half $(HALF) --out $(RUN)/questions.jsonl
	$(BIN)/tutor eval ../shared/eval/dev_questions.jsonl --half $(HALF) --out $(RUN)/dev.jsonl
	$(BIN)/tutor eval ../shared/eval/paraphrase_questions.jsonl --half $(HALF) --out $(RUN)/paraphrase.jsonl
	$(BIN)/tutor eval eval/staff_questions.jsonl --half $(HALF) --out $(RUN)/staff.jsonl
	$(BIN)/tutor eval eval/fresh_questions.jsonl --half $(HALF) --out $(RUN)/fresh.jsonl
	$(BIN)/tutor eval eval/scope_questions.jsonl --half $(HALF) --out $(RUN)/scope.jsonl
	$(BIN)/tutor eval eval/near_topic_questions.jsonl --half $(HALF) --out $(RUN)/near-topic.jsonl
	$(BIN)/tutor eval eval/conversation_questions.jsonl --half $(HALF) --out $(RUN)/conversation.jsonl
	$(BIN)/tutor eval eval/switch_questions.jsonl --half $(HALF) --out $(RUN)/switch.jsonl
	$(BIN)/tutor eval eval/openings_questions.jsonl --half $(HALF) --out $(RUN)/openings.jsonl
	$(BIN)/tutor eval eval/midconv_questions.jsonl --half $(HALF) --out $(RUN)/midconv.jsonl
	$(BIN)/tutor eval eval/chat_questions.jsonl --half $(HALF) --out $(RUN)/chat.jsonl
	$(BIN)/tutor eval eval/unseen_questions.jsonl --half $(HALF) --out $(RUN)/unseen.jsonl
	$(BIN)/tutor eval eval/blind_questions.jsonl --half $(HALF) --out $(RUN)/blind.jsonl
	$(BIN)/tutor eval eval/sealed_questions.jsonl --half $(HALF) --out $(RUN)/sealed.jsonl
	$(BIN)/tutor eval eval/guides_questions.jsonl --half $(HALF) --out $(RUN)/guides.jsonl
	$(BIN)/tutor eval eval/untried_questions.jsonl --half $(HALF) --out $(RUN)/untried.jsonl
	$(BIN)/tutor eval eval/guide_text_questions.jsonl --half $(HALF) --out $(RUN)/guide-text.jsonl
	$(BIN)/tutor eval eval/figure_questions.jsonl --half $(HALF) --out $(RUN)/figure.jsonl
	$(BIN)/tutor eval eval/followup_questions.jsonl --half $(HALF) --out $(RUN)/followup.jsonl
	$(BIN)/tutor eval eval/offtopic_followup_questions.jsonl --half $(HALF) --out $(RUN)/offtopic-followup.jsonl
	$(BIN)/tutor eval eval/near_topic_fact_questions.jsonl --half $(HALF) --out $(RUN)/near-topic-fact.jsonl
	$(BIN)/tutor eval eval/typed_questions.jsonl --half $(HALF) --out $(RUN)/typed.jsonl
