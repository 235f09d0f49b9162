# twinyard in a container: the four simulators, the harness and the reference stack in one image
# (docs/containers.md). With no command it serves the reference stack, configured by the same
# TWINYARD_* variables `twinyard run` gives a stack it launches; `twinyard sims ...`,
# `twinyard run ...` or `locust ...` as the command run those instead.
#
# FROM names the public image. Where no registry is reachable, `make containers` makes a base
# from Debian's packages (mmdebstrap) and tags it with this name; build with --pull=never then.
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS deps
# A virtualenv with the dependencies, read from pyproject.toml alone: a code change leaves this
# stage cached (a rebuild after one takes seconds and adds a layer of a few MB, not 200).
ENV PATH=/opt/twinyard/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt
RUN python3 -m venv /opt/twinyard && pip install --quiet --upgrade pip
WORKDIR /src
COPY pyproject.toml ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; print('\n'.join(deps))" > requirements.txt \
 && pip install --quiet -r requirements.txt

FROM deps AS venv
# What the image runs with: the dependencies without the tools that installed them.
RUN pip uninstall --quiet --yes pip setuptools

FROM deps AS code
# twinyard itself, under a prefix of its own that the runtime stage lays over the venv.
COPY README.md ./
COPY harness ./harness
COPY simulators ./simulators
COPY reference_stack ./reference_stack
RUN pip install --quiet --no-deps --prefix /opt/code .

FROM ${BASE}
ARG VERSION=unknown
ARG BASE=python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="twinyard" \
      org.opencontainers.image.description="Simulated ERP, WMS, TMS and parcel carrier, the harness that plays a warehouse day against a logistics integration stack, and the reference stack" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.base.name="${BASE}" \
      org.opencontainers.image.documentation="docs/containers.md"
# A user of its own, no login, no password: nothing in the yard needs root.
RUN useradd --uid 10001 --user-group --home-dir /yard --create-home --no-log-init \
        --shell /usr/sbin/nologin twinyard
COPY --from=venv /opt/twinyard /opt/twinyard
COPY --from=code /opt/code /opt/twinyard
ENV PATH=/opt/twinyard/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TWINYARD_STACK_PORT=8700
WORKDIR /yard
# The scenario library and the contracts at the paths the docs use (scenarios/happy_day.yaml).
RUN python -c "from harness import bundled; import os; [os.symlink(p, n) for p, n in ((bundled.SCENARIOS, 'scenarios'), (bundled.OPENAPI.parent, 'contracts'))]"
USER twinyard
# The stack and the simulators listen on loopback: run with host networking (docs/containers.md).
EXPOSE 8700 7101 7102 7103 7104
# Python turns SIGINT into a clean stop even as PID 1, which ignores an unhandled SIGTERM.
STOPSIGNAL SIGINT
# The reference stack's health route by default; TWINYARD_HEALTH_URL names another
# (the simulators' service in docker-compose.yml checks GET /_sim/clock).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; port = os.environ.get('TWINYARD_STACK_PORT', '8700'); r.urlopen(os.environ.get('TWINYARD_HEALTH_URL') or f'http://127.0.0.1:{port}/_stack/health', timeout=2)"]
CMD ["python", "-m", "reference_stack"]
