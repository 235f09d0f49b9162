# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test test-setup debian-packages selftest pacts lint chromium format bench clean \
	containers containers-tools \
	containers-base containers-image containers-api containers-stop

# The yard in containers (docs/containers.md): podman behind its Docker-compatible API, a base
# image made from Debian's packages where no registry is reachable, the twinyard image.
VERSION     := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGE       := twinyard:$(VERSION)
BASE_IMAGE  := python:3.11-slim-bookworm
CONTAINERS  := $(CURDIR)/.containers
PODMAN      := CONTAINERS_CONF=$(CONTAINERS)/containers.conf podman
PODMAN_SOCK := $(CONTAINERS)/podman.sock
YARD_DOCKER_HOST := unix://$(PODMAN_SOCK)
PING        := import docker; docker.DockerClient(base_url='$(YARD_DOCKER_HOST)', timeout=5).ping()
IMAGE_STAMP := $(CONTAINERS)/image-$(VERSION).id
IMAGE_INPUTS := Dockerfile .dockerignore pyproject.toml README.md \
	$(shell find harness simulators reference_stack -type f ! -name '*.pyc' ! -path '*/__pycache__/*')
# This machine's CA bundle and pip configuration, at build time only (never in the image).
BUILD_MOUNTS := $(if $(wildcard /etc/ssl/certs),-v /etc/ssl/certs:/etc/ssl/certs:ro) \
	$(if $(wildcard /etc/xdg/pip),-v /etc/xdg/pip:/etc/xdg/pip:ro)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)  ## a 200-order day against the bundled reference stack, with its verdict
	$(BIN)/twinyard run scenarios/happy_day.yaml --report-dir reports/demo

# pytest-xdist workers: two per core. At one per core a fresh clone's suite kept 1.17 of 2 cores
# busy (CPU 19.6 min in 16.7 min wall): its end-to-end tests wait on wall-clock timers (latency
# faults, a stack's retry timers, lockstep's pacing) more than they compute. On 2026-12-07, at
# three workers pytest took 617 s of a fresh clone's CI; at four 507 s, using 1.48 cores.
XDIST_WORKERS ?= $(shell echo $$(( $$(nproc) * 2 )))

test:  ## the whole suite; pytest's "no tests ran" (exit 5) fails the build too
	@$(MAKE) --no-print-directory -j3 test-setup
	DOCKER_HOST=$(YARD_DOCKER_HOST) $(BIN)/pytest -q -n $(XDIST_WORKERS) -p no:cacheprovider --durations=25

# What the suite needs, made side by side (make -j3): the virtual environment and its packages
# download while apt installs Debian's and the container image is built (a fresh machine here,
# warm mirrors: 108 s one after the other, 98 s side by side).
test-setup: $(STAMP) lint debian-packages containers

# Every Debian package the suite needs, in one apt-get (one index update, one dpkg run; two
# apt-gets at once would fight over dpkg's lock): chromium for the report.html screenshot test,
# podman, runc, mmdebstrap and docker-compose for the container tests.
DEBIAN_TOOLS := chromium podman runc mmdebstrap docker-compose
debian-packages:  ## chromium and the container tools (Debian), when missing
	@for tool in $(DEBIAN_TOOLS); do command -v $$tool >/dev/null || missing=1; done; \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq $(DEBIAN_TOOLS) >/dev/null; fi

chromium: debian-packages  ## headless Chromium (Debian) for the report.html screenshot test

containers: containers-image containers-api  ## podman, the twinyard image, the Docker API on .containers/podman.sock

containers-tools: debian-packages  ## podman (Debian), runc, mmdebstrap and docker-compose, when missing

# No CAP_SYS_RESOURCE in a sandbox: lower the default ulimits; runc and cgroupfs, not crun's
# cgroup-v2 mode. Project-local: nothing under /etc is touched.
$(CONTAINERS)/containers.conf: Makefile
	mkdir -p $(CONTAINERS)
	printf '%s\n' '[containers]' 'default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]' \
		'netns = "host"' '[engine]' 'runtime = "runc"' 'cgroup_manager = "cgroupfs"' > $@

containers-base: containers-tools $(CONTAINERS)/containers.conf  ## BASE_IMAGE: pulled, else made from Debian's packages
	@$(PODMAN) image exists $(BASE_IMAGE) || $(PODMAN) pull -q $(BASE_IMAGE) 2>/dev/null || { \
		echo "no registry: making $(BASE_IMAGE) from Debian's packages (mmdebstrap)"; \
		mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,ca-certificates \
			--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
			--dpkgopt='path-exclude=/usr/share/locale/*' \
			--customize-hook='rm -rf "$$1"/var/lib/apt/lists/* "$$1"/var/cache/apt/*' \
			bookworm $(CONTAINERS)/base.tar \
		&& $(PODMAN) import -q $(CONTAINERS)/base.tar localhost/twinyard-base:bookworm >/dev/null \
		&& $(PODMAN) tag localhost/twinyard-base:bookworm $(BASE_IMAGE) \
		&& rm -f $(CONTAINERS)/base.tar; }

containers-image: containers-base  ## the twinyard image, rebuilt when its inputs change
	@$(PODMAN) image inspect --format '{{.Id}}' $(IMAGE) 2>/dev/null | cmp -s - $(IMAGE_STAMP) \
		|| rm -f $(IMAGE_STAMP)
	@$(MAKE) --no-print-directory $(IMAGE_STAMP)

$(IMAGE_STAMP): $(IMAGE_INPUTS)
	$(PODMAN) build --pull=never --format docker $(BUILD_MOUNTS) --build-arg VERSION=$(VERSION) \
		--build-arg BASE=$(BASE_IMAGE) -t $(IMAGE) -t twinyard:latest .
	$(PODMAN) image inspect --format '{{.Id}}' $(IMAGE) > $@
	@echo "$(IMAGE): $$($(PODMAN) image inspect --format '{{.Size}}' $(IMAGE) | awk '{printf "%.0f MB", $$1/1e6}')"

containers-api: $(STAMP) containers-tools $(CONTAINERS)/containers.conf  ## podman's Docker API on $(PODMAN_SOCK)
	@if ! $(BIN)/python -c "$(PING)" 2>/dev/null; then \
		rm -f $(PODMAN_SOCK); \
		$(PODMAN) system service --time=0 $(YARD_DOCKER_HOST) </dev/null >$(CONTAINERS)/service.log 2>&1 & \
		echo $$! > $(CONTAINERS)/service.pid; \
		for i in $$(seq 60); do $(BIN)/python -c "$(PING)" 2>/dev/null && break; sleep 0.5; done; \
		$(BIN)/python -c "$(PING)" 2>/dev/null || { tail -5 $(CONTAINERS)/service.log; exit 1; }; \
		echo "podman API: DOCKER_HOST=$(YARD_DOCKER_HOST) (pid $$(cat $(CONTAINERS)/service.pid))"; fi

containers-stop:  ## stop the podman API service that `make containers` started
	@if [ -f $(CONTAINERS)/service.pid ]; then kill $$(cat $(CONTAINERS)/service.pid) 2>/dev/null; \
		rm -f $(CONTAINERS)/service.pid $(PODMAN_SOCK); fi

selftest: $(STAMP)  ## the detection matrix: every reference-stack defect x the incident library
	$(BIN)/twinyard selftest --json reports/selftest.json

pacts: $(STAMP)  ## rewrite contracts/pacts from the reference stack's consumer tests
	$(BIN)/python -m tests.pacts.record contracts/pacts

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)  ## throughput figures; needs wrk (Debian package)
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python benchmarks/simulator_throughput.py
	$(BIN)/python benchmarks/http_clients.py
	$(BIN)/python benchmarks/sim_routing.py
	$(BIN)/python benchmarks/end_to_end.py

clean:
	rm -rf $(VENV) reports .pytest_cache .hypothesis *.egg-info
