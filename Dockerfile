# One image for the five services (and the one-shot `keygen`); docker-compose.yml picks the
# service with its command: `python -m services.<name>`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1

WORKDIR /src

# Pinned, hash-checked dependencies first: this layer is rebuilt only when the lock changes.
COPY requirements.lock ./
RUN pip install -r requirements.lock

# Then the platform itself, without touching the pinned dependencies.
COPY pyproject.toml ./
COPY shared ./shared
COPY services ./services
COPY ops ./ops
RUN pip install --no-deps . \
    && cd / && rm -rf /src

# An unprivileged user; DATA_DIR holds only the JWT key volume (mounted at $DATA_DIR/jwt).
RUN useradd --system --uid 10001 --user-group --no-log-init \
        --home-dir /var/lib/mentorship --shell /usr/sbin/nologin mentorship \
    && mkdir -p /var/lib/mentorship/jwt \
    && chown -R mentorship:mentorship /var/lib/mentorship

ENV DATA_DIR=/var/lib/mentorship \
    HTTP_HOST=0.0.0.0

WORKDIR /var/lib/mentorship
USER mentorship

EXPOSE 8000 8001 8002 8003 8004

# docker-compose.yml sets the command of each service; this default is the profiles service.
CMD ["python", "-m", "services.profiles"]
