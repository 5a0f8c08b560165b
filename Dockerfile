# syntax=docker/dockerfile:1
# opensupp in a container: `docker build -t opensupp .`, or `docker compose up` with PostgreSQL
# (compose.yaml). Without OPENSUPP_DATABASE_URL it serves on an SQLite file in the /data volume.

# ---- build: wheels for the SDK (./client), the server (.) and every dependency. The server's
# trigger engine is compiled here (Cython, a C compiler); the runtime image needs neither.
FROM python:3.11-slim-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY client/ client/
COPY pyproject.toml setup.py README.md LICENSE ./
COPY src/ src/
# ./client first: the server's requirement "opensupp-client" is met by this tree, never by an index
RUN pip wheel --wheel-dir /wheels ./client .

# ---- runtime: slim, no compiler, a non-root user
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    OPENSUPP_DATA_DIR=/data
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels opensupp-client opensupp \
    # the trigger engine must have been compiled, not left as plain Python
    && python -c "from opensupp.triggers import plan; assert plan.COMPILED, 'trigger engine not compiled'"
RUN useradd --system --uid 10001 --user-group --home-dir /data --no-create-home --shell /usr/sbin/nologin opensupp \
    && install -d -o opensupp -g opensupp -m 0750 /data
USER opensupp
WORKDIR /data
# the SQLite default (OPENSUPP_DATA_DIR/opensupp.db); unused when OPENSUPP_DATABASE_URL names PostgreSQL
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
# `opensupp serve` migrates the database, then serves; add --workers N for more processes.
# A first API key: docker exec <container> opensupp keys create --name default
ENTRYPOINT ["opensupp"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
