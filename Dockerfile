# The web app's npm libraries (hls.js), installed from web/package-lock.json.
FROM python:3.11-slim AS web
RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY web/index.html ./
COPY web/assets ./assets

# One image for both process kinds: `peerpitch serve` (default) and `peerpitch worker`.
FROM python:3.11-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg \
 && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PEERPITCH_ENV=production \
    PEERPITCH_LOG_FORMAT=json \
    PEERPITCH_WEB_DIR=/srv/peerpitch/web

WORKDIR /srv/peerpitch
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY workers ./workers
COPY alembic ./alembic
COPY --from=web /web ./web
RUN pip install --no-cache-dir . \
 && useradd --create-home --uid 10001 peerpitch \
 && mkdir -p /srv/peerpitch/var \
 && chown -R peerpitch /srv/peerpitch/var

USER peerpitch
EXPOSE 8000
# Run `peerpitch migrate` once per release (e.g. a one-off container) before new API processes.
CMD ["peerpitch", "serve", "--host", "0.0.0.0", "--port", "8000"]
