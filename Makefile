# Landmark recognition: two gRPC services (extractor, search) and a Python SDK.
# `make demo` runs the main job; `make test` runs the tests. Both install what they need.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
GALLERY ?=
PROTOS := $(wildcard protos/landmark/v1/*.proto)

.PHONY: install export-tools export-aliked protos protos-check demo test test-fast load-test lint serve-extractor serve-search bench quality-ceiling clean

install: $(STAMP)

$(STAMP): pyproject.toml client/pyproject.toml requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip "setuptools<81" wheel
	$(PIP) install --quiet -r requirements-dev.txt -e "./client[cli]" -e ".[search,delf,aliked]"
	touch $(STAMP)

# PyTorch (CPU build), kornia and the ONNX exporter: for `make export-aliked` and the
# ALIKED parity test only; the services never import them.
EXPORT_STAMP := $(VENV)/.export-tools
export-tools: $(EXPORT_STAMP)
$(EXPORT_STAMP): $(STAMP) requirements-export.txt
	$(PIP) install --quiet -r requirements-export.txt
	touch $(EXPORT_STAMP)

# Rebuild extractor_service/models/aliked (ONNX graphs, head weights, SHA256SUMS) from the
# official weights; WEIGHTS= names their folder (default ../shared/models/aliked).
WEIGHTS ?=
export-aliked: $(EXPORT_STAMP)
	$(PY) -m extractor_service.models.export_aliked $(if $(WEIGHTS),--weights $(WEIGHTS),)

# Regenerate the checked-in stubs (_pb2.py, _pb2_grpc.py, .pyi) from protos/.
protos: $(STAMP)
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=client --pyi_out=client \
		--grpc_python_out=client $(PROTOS)

# Fail when the checked-in stubs differ from what protos/ generates.
protos-check: $(STAMP)
	@tmp=$$(mktemp -d) && \
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=$$tmp --pyi_out=$$tmp \
		--grpc_python_out=$$tmp $(PROTOS) && \
	for f in $$(cd $$tmp && find landmark -type f); do \
		cmp -s $$tmp/$$f client/$$f || { echo "stale generated stub: client/$$f (run 'make protos')"; exit 1; }; \
	done && echo "generated stubs are up to date"

demo: $(STAMP)
	$(VENV)/bin/landmark demo $(if $(GALLERY),--gallery $(GALLERY),)

test: $(STAMP) $(EXPORT_STAMP) protos-check
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not load"

# The full load test: 16 clients for 60 s (`make test` runs it for 30 s).
load-test: $(STAMP)
	LANDMARK_LOAD_SECONDS=60 $(PY) -m pytest -q -s -m load

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

serve-extractor: $(STAMP)
	$(VENV)/bin/landmark serve extractor

serve-search: $(STAMP)
	$(VENV)/bin/landmark serve search

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info client/*.egg-info

# The benchmark suite: writes bench/results/bench.json and bench/results/REPORT.md.
bench: $(STAMP)
	$(PY) -m bench.run

# The exhaustive all-pairs check of docs/quality.md; BACKEND=aliked for the learned feature.
BACKEND ?= sift
quality-ceiling: $(STAMP)
	$(PY) -m bench.ceiling --backend $(BACKEND)
