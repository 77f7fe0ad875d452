# One image for web (daphne), worker (celery) and the one-shot migrate service: see compose.yaml.
FROM python:3.12-slim

# HARNESS_STATIC_ROOT: static files belong to the image, not to the /data volume, which would keep
# serving the first build's files after an upgrade.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=harness_site.settings \
    HARNESS_DATA_DIR=/data \
    HARNESS_STATIC_ROOT=/app/staticfiles

WORKDIR /app

# Dependencies first, so a code change does not reinstall them.
COPY requirements.lock ./
RUN pip install -r requirements.lock

COPY . .

# collectstatic needs settings to load with production values but no services.
RUN DEBUG=false SECRET_KEY=collectstatic-only-not-secret \
    python manage.py collectstatic --noinput \
 && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin harness \
 && mkdir -p /data \
 && chown harness /data

USER harness
VOLUME ["/data"]
EXPOSE 8000

CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "--websocket_timeout", "-1", \
     "harness_site.asgi:application"]
