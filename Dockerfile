# The worker image: `coeflow worker` by default; also runs `python -m processor.topic_creation`.
# It holds no embedded broker (the `embedded` extra): a deployment points
# COEFLOW_KAFKA_BOOTSTRAP at Kafka. Versions are the ones the suite last passed with (constraints.txt).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    COEFLOW_WEB_BIND=0.0.0.0 \
    COEFLOW_DATA_DIR=/var/lib/coeflow

WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
COPY coeflow ./coeflow
COPY processor ./processor
COPY actions ./actions
COPY topics ./topics
COPY executors ./executors
RUN pip install --constraint constraints.txt '.[rocksdb]' \
 && useradd --system --uid 10001 coeflow \
 && mkdir -p /var/lib/coeflow && chown coeflow /var/lib/coeflow

USER coeflow
EXPOSE 6066
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
  CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:6066/health', timeout=2)" || exit 1
ENTRYPOINT ["coeflow"]
CMD ["worker", "--loglevel", "info"]
