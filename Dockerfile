# One image for every process: `ccbb web`, `ccbb worker`, `ccbb migrate`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 CCBB_DATA_DIR=/data
WORKDIR /app
COPY pyproject.toml README.md alembic.ini requirements-prod.lock ./
COPY scanner ./scanner
COPY ccbb ./ccbb
COPY store ./store
COPY web ./web
COPY migrations ./migrations
COPY worker.py ./
# exact versions with hashes (requirements-prod.lock); editable: the Alembic migrations are
# read from /app/migrations; the pages' translations compiled (.mo files are not committed)
RUN pip install --require-hashes -r requirements-prod.lock && pip install --no-deps -e . \
    && pybabel compile -d web/locale -D messages \
    && useradd --create-home --uid 10001 ccbb && mkdir -p /data && chown ccbb /data
USER ccbb
CMD ["ccbb", "worker"]
