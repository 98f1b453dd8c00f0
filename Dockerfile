# weft as a container image: `docker build -t weft .`, then run it with DATABASE_URL set
# (docker-compose.yml does, for local development). Without DATABASE_URL it falls back to
# the embedded PostgreSQL in WEFT_DATA_DIR, as `weft serve` does anywhere.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /tmp/weft
COPY pyproject.toml setup.py README.md ./
COPY blocks blocks
COPY runner runner
COPY web web
COPY sql sql
# The wheel ships sql/ inside the runner package (setup.py).
RUN pip install . && cd / && rm -rf /tmp/weft

RUN useradd --create-home --uid 10001 weft \
    && mkdir /data && chown weft:weft /data
USER weft
WORKDIR /data
# PORT: as on Heroku, the port `weft serve` binds on 0.0.0.0. WEFT_DATA_DIR: local
# artifacts (when GCS_BUCKET is unset) and the embedded database (when DATABASE_URL is).
ENV PORT=8000 \
    WEFT_DATA_DIR=/data
EXPOSE 8000
VOLUME ["/data"]

# The Procfile's web command (its release command, `weft migrate`, is also done by
# `weft serve` at start, under a lock).
CMD ["weft", "serve"]
