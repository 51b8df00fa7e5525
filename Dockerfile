# Antrian queue service. Used by docker-compose.yml (the "Production stack" in README.md);
# also runs on its own:  docker run -e DATABASE_URL=postgresql://... -p 8080:8080 antrian
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ANTRIAN_HOST=0.0.0.0 \
    ANTRIAN_PORT=8080 \
    ANTRIAN_DATA_DIR=/app/var/pgdata

RUN groupadd --system --gid 10001 antrian \
 && useradd --system --uid 10001 --gid antrian --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin antrian

# Built outside /app so the source tree does not shadow the installed package.
COPY pyproject.toml /tmp/src/
COPY queue_service/ /tmp/src/queue_service/
COPY devices/ /tmp/src/devices/
RUN pip install --no-cache-dir /tmp/src && rm -rf /tmp/src

WORKDIR /app
COPY config/ config/
COPY kiosk/ kiosk/
# The pages are served from /app/kiosk. /app/var holds the embedded PostgreSQL, used only
# when DATABASE_URL is unset.
ENV ANTRIAN_PAGES_DIR=/app/kiosk
RUN mkdir -p /app/var \
 && chown antrian:antrian /app/var

USER 10001:10001
EXPOSE 8080

# Ready = database reachable and replay done (GET /readyz answers 503 otherwise).
# No curl in the slim image: Python's urllib raises on any non-2xx answer.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('ANTRIAN_PORT', '8080'), timeout=4)"]

CMD ["queue-service", "run", "--config", "/app/config/example-hall.toml"]
