# Landmark recognition: two gRPC services (extractor, search) and a Python SDK.
# `make demo` runs the main job; `make test` runs the tests. Both install what they need.
# `make help` lists every target.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
GALLERY ?=
PROTOS := $(wildcard protos/landmark/v1/*.proto)

.PHONY: help install demo-picture readme-settings export-tools export-aliked protos protos-check demo test test-fast load-test lint typecheck serve-extractor serve-search serve-coordinator bench bench-large bench-ingest gpu-check cpu-options quality-ceiling overlay-quality figures clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

install: $(STAMP) ## create .venv with the services, the SDK and the development tools

$(STAMP): pyproject.toml protos/pyproject.toml client/pyproject.toml requirements-dev.txt constraints-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip "setuptools<81" wheel
	$(PIP) install --quiet -c constraints-dev.txt -r requirements-dev.txt \
		-e ./protos -e "./client[cli]" -e ".[search,delf,aliked]"
	touch $(STAMP)

# PyTorch (CPU build), kornia and the ONNX exporter: for `make export-aliked` and the
# ALIKED parity test only; the services never import them.
EXPORT_STAMP := $(VENV)/.export-tools
export-tools: $(EXPORT_STAMP) ## install PyTorch (CPU), kornia and the ONNX exporter
$(EXPORT_STAMP): $(STAMP) requirements-export.txt
	$(PIP) install --quiet -r requirements-export.txt
	touch $(EXPORT_STAMP)

# Rebuild extractor_service/models/aliked (ONNX graphs, head weights, SHA256SUMS) from the
# official weights; WEIGHTS= names their folder (default ../shared/models/aliked).
WEIGHTS ?=
export-aliked: $(EXPORT_STAMP) ## rebuild the shipped ALIKED model files from the official weights
	$(PY) -m extractor_service.models.export_aliked $(if $(WEIGHTS),--weights $(WEIGHTS),)

# Regenerate the checked-in stubs (_pb2.py, _pb2_grpc.py, .pyi) beside the .proto files.
protos: $(STAMP) ## regenerate the stubs in protos/landmark/v1 from the .proto files
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=protos --pyi_out=protos \
		--grpc_python_out=protos $(PROTOS)

# Fail when the checked-in stubs differ from what protos/ generates.
protos-check: $(STAMP) ## fail when the checked-in stubs differ from protos/
	@tmp=$$(mktemp -d) && \
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=$$tmp --pyi_out=$$tmp \
		--grpc_python_out=$$tmp $(PROTOS) && \
	for f in $$(cd $$tmp && find landmark -type f); do \
		cmp -s $$tmp/$$f protos/$$f || { echo "stale generated stub: protos/$$f (run 'make protos')"; exit 1; }; \
	done && echo "generated stubs are up to date"

demo: $(STAMP) ## start the services, index a gallery, query it, draw a match (GALLERY=dir)
	$(VENV)/bin/landmark demo $(if $(GALLERY),--gallery $(GALLERY),)

# The picture in the README, drawn by the demo.
demo-picture: $(STAMP) ## redraw docs/demo-match.png with `make demo`
	$(VENV)/bin/landmark demo --out out/demo
	cp out/demo/demo-match.png docs/demo-match.png

test: $(STAMP) $(EXPORT_STAMP) protos-check ## every test (about 15 minutes on 2 cores)
	$(PY) -m pytest -q

test-fast: $(STAMP) ## the tests without the slow and load ones
	$(PY) -m pytest -q -m "not slow and not load"

# The full load test: 16 clients for 60 s (`make test` runs it for 30 s).
load-test: $(STAMP) ## 16 clients for 60 s
	LANDMARK_LOAD_SECONDS=60 $(PY) -m pytest -q -s -m load

readme-settings: $(STAMP) ## regenerate the README's settings table from the settings classes
	$(PY) -m tests.settings_table

lint: $(STAMP) ## ruff check and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP) ## mypy over the SDK, the contract helpers and serving/ ([tool.mypy])
	$(VENV)/bin/mypy

serve-extractor: $(STAMP) ## run the extractor on 127.0.0.1:50051
	$(VENV)/bin/landmark-extractor

serve-search: $(STAMP) ## run the search service on 127.0.0.1:50052 (index in ./landmark-index)
	$(VENV)/bin/landmark-search

SHARDS ?=
serve-coordinator: $(STAMP) ## run a coordinator on 127.0.0.1:50053 (SHARDS=host:port,...)
	$(VENV)/bin/landmark-coordinator --shards $(SHARDS)

clean: ## remove .venv and build leftovers
	rm -rf $(VENV) .pytest_cache build *.egg-info client/*.egg-info

# The benchmark suite: writes bench/results/bench.json and bench/results/REPORT.md.
bench: $(STAMP) ## the benchmark suite (bench/results)
	$(PY) -m bench.run

# Not in CI: about 31 GB of index and over an hour on 2 cores. SIZES=50000,200000 for more.
SIZES ?= 200000
bench-large: $(STAMP) ## one node at 200,000 images (bench/results/large.json)
	$(PY) -m bench.large --sizes $(SIZES)

# Not in CI: about 25 minutes on 2 cores (ingest through 1 and 2 extractor processes, sift
# and aliked; adds and searches while a merge of 3M+ rows runs; adds through a changelog
# against a single node). PART=throughput, merge or changelog.
PART ?= all
bench-ingest: $(STAMP) ## how fast the service is fed (bench/results/ingest.json)
	$(PY) -m bench.ingest --part $(PART)

figures: $(STAMP) ## REPORT.md and the README's and docs' measured tables, from bench/results
	$(PY) -c "from bench.report import rewrite; rewrite()"

# Which ONNX Runtime provider the aliked extractor uses, ms per photo at batch 1 and 8 per
# variant, parity with the CPU path; says "no GPU" (and exits 0) on a CPU-only machine.
gpu-check: $(STAMP) ## the aliked extractor on this machine's GPU (bench/results/gpu.json)
	$(PY) -m bench.gpu_check

# The aliked extractor's CPU options side by side (bench/results/cpu_options.json), about
# 10 minutes on 2 cores; needs onnx for the int8 quantisation (make export-tools).
cpu-options: $(EXPORT_STAMP) ## photos/s of each CPU option of the aliked extractor
	$(PY) -m bench.cpu_options

# Overlays (watermark, banner, logo, timestamp, letterbox) drawn on the shared photos: pairs
# of different landmarks accepted, eval over a gallery a third overlaid, overlaid queries;
# the service's defences off and on in one run. About 25 minutes on 2 cores.
overlay-quality: $(STAMP) ## what overlays do to the answers (bench/results/overlays.json)
	$(PY) -m bench.overlay_quality

# The exhaustive all-pairs check of docs/quality.md; BACKEND=aliked for the learned feature.
BACKEND ?= sift
quality-ceiling: $(STAMP) ## the exhaustive all-pairs check of docs/quality.md
	$(PY) -m bench.ceiling --backend $(BACKEND)
