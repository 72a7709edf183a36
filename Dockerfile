# The code location image: the gRPC code server (Helm user deployment), the run pods the
# K8sRunLauncher starts, the Celery workers, and the webserver and daemon (they load
# sync_pipelines' instance class). Build: docker build -t sync-pipelines:$(git rev-parse --short HEAD) .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    SYNC_DATA_DIR=/opt/dagster/data

WORKDIR /opt/sync_pipelines
# dependencies first, so a code change does not reinstall them
COPY pyproject.toml README.md ./
RUN mkdir sync_pipelines && touch sync_pipelines/__init__.py \
    && pip install . "dagster-k8s==0.29.27" \
    && pip uninstall -y sync_pipelines && rm -rf sync_pipelines build
COPY sync_pipelines ./sync_pipelines
COPY dagster.yaml workspace.yaml ./
RUN pip install --no-deps . \
    && mkdir -p "$DAGSTER_HOME" "$SYNC_DATA_DIR" \
    && cp dagster.yaml "$DAGSTER_HOME/dagster.yaml" \
    && useradd --uid 10001 --home-dir /opt/dagster dagster \
    && chown -R dagster /opt/dagster
USER dagster
WORKDIR /opt/dagster

EXPOSE 3030
# The Helm chart runs `dagster api grpc` with its own arguments; this default serves the same.
CMD ["dagster", "api", "grpc", "-h", "0.0.0.0", "-p", "3030", "-m", "sync_pipelines.definitions"]
