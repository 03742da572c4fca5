# The two quick-start commands: `make demo` (the main job) and `make test`.
# Each creates .venv when missing and installs what it needs; torch is installed first,
# pinned, so that pip takes the CPU build rather than fetching a CUDA one.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test test-slow benchmark-supervised clean

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

clean:
	rm -rf $(VENV) runs .pytest_cache
