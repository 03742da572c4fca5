# The two quick-start commands: `make demo` (the main job) and `make test`.
# Each creates .venv when missing and installs what it needs; torch is installed first,
# pinned, so that pip takes the CPU build rather than fetching a CUDA one.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test test-slow benchmark-supervised benchmark-acquisition benchmark-lowstart benchmark-camvid benchmark-ralis labelstudio-roundtrip clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/activeseg benchmark configs/camvid_demo.yaml

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

benchmark-supervised: $(STAMP)
	$(PY) benchmarks/supervised.py --finetune-epochs 15 --out docs/supervised.json

benchmark-acquisition: $(STAMP)
	$(PY) -m pip install -q -e '.[test,bench]'
	$(PY) -m pip install -q --no-deps baal==2.1.0
	$(PY) benchmarks/acquisition_vs_baal.py --out docs/acquisition_vs_baal.json

benchmark-lowstart: $(STAMP)
	$(VENV)/bin/activeseg benchmark configs/camvid_lowstart.yaml

benchmark-camvid: $(STAMP)
	$(VENV)/bin/activeseg benchmark configs/camvid_cpu.yaml

# RALIS: train the agent, test it (last and best checkpoints) in the baselines' store, check it on val
benchmark-ralis: $(STAMP)
	$(VENV)/bin/activeseg agent train configs/ralis_agent_camvid.yaml
	$(VENV)/bin/activeseg benchmark configs/camvid_ralis.yaml
	$(VENV)/bin/activeseg benchmark configs/camvid_ralis_best.yaml
	$(PY) benchmarks/ralis_policy_check.py configs/ralis_agent_camvid.yaml --episodes 5 --out docs/ralis

# A live Label Studio round trip of our crop tasks (built directly, and a project round exported by
# `activeseg project query` and imported back by `activeseg project import`). Label Studio (a Django app
# with many pins) goes into its own venv .venv-ls, never into .venv; the harness talks to it over its REST API.
LS_VENV := .venv-ls
LS_VERSION := 1.23.2

labelstudio-roundtrip: $(STAMP)
	test -x $(LS_VENV)/bin/python || $(PYTHON) -m venv $(LS_VENV)
	printf '*\n' > $(LS_VENV)/.gitignore
	$(LS_VENV)/bin/python -m pip install -q label-studio==$(LS_VERSION)
	$(PY) benchmarks/labelstudio_live.py --camvid 12 --out docs/labelstudio_roundtrip.json
	$(PY) benchmarks/labelstudio_live.py --project 12 --out docs/labelstudio_project_roundtrip.json

clean:
	rm -rf $(VENV) runs .pytest_cache
