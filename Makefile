.PHONY: demo test test-whisperx ui bench lint clean

VENV := .venv
BOOT := $(VENV)/.bootstrap-stamp
# The real public samples when they sit beside the checkout; without them their tests skip (one
# summary line says so), and .ci/run makes such skips failures.
ifneq ($(wildcard ../shared/real/.),)
export SHARDSMITH_REAL_SAMPLES ?= $(abspath ../shared/real)
endif

$(BOOT): pyproject.toml requirements-extra.txt scripts/bootstrap.sh
	./scripts/bootstrap.sh

# `make demo` records its runs in the same Dagster instance `make ui` serves (.dagster_home), so the
# UI opens on every asset materialised, with its metadata, checks and contact sheets.
DAGSTER_HOME_DIR := $(abspath .dagster_home)

$(DAGSTER_HOME_DIR)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME_DIR) && cp dagster.yaml $@

demo: $(BOOT) $(DAGSTER_HOME_DIR)/dagster.yaml
	DAGSTER_HOME=$(DAGSTER_HOME_DIR) SHARDSMITH_DEMO=1 $(VENV)/bin/shardsmith demo --home demo-home

test: $(BOOT)
	$(VENV)/bin/python -m pytest -q -rfE -n 2 --dist loadfile

# whisperx (the `gpu` extra) in a venv of its own, transcribing on the CPU offline; not part of `make test`.
WX_VENV := .venv-whisperx
$(WX_VENV)/.bootstrap-stamp: pyproject.toml scripts/bootstrap_whisperx.sh
	./scripts/bootstrap_whisperx.sh

test-whisperx: $(WX_VENV)/.bootstrap-stamp
	$(WX_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/speech/test_whisperx_cpu.py

ui: $(BOOT) $(DAGSTER_HOME_DIR)/dagster.yaml
	DAGSTER_HOME=$(DAGSTER_HOME_DIR) SHARDSMITH_HOME=$(abspath demo-home) SHARDSMITH_DEMO=1 \
		$(VENV)/bin/dagster dev

bench: $(BOOT)
	$(VENV)/bin/python -m bench.run_all

lint: $(BOOT)
	$(VENV)/bin/ruff check shardsmith tests bench

clean:
	rm -rf demo-home .dagster_home .venv-whisperx
