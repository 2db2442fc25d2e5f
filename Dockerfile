# canary-bot image. Build: docker build -t canary-bot .
# Run (Socket Mode): docker run -e SLACK_BOT_TOKEN -e SLACK_APP_TOKEN -e AWS_REGION ... canary-bot
# Run (HTTP mode):   add -e SLACK_SIGNING_SECRET -p 3000:3000 and drop SLACK_APP_TOKEN.
# No secrets are baked in: every token comes from the environment at run time.

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Metadata first, sources after, so editing code does not invalidate more layers than needed.
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY commands ./commands
COPY handlers ./handlers
RUN pip install --no-cache-dir .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    PORT=3000
# A fixed, unprivileged UID so volume permissions are predictable; its home is the working directory, where
# the default SQLite store (CANARY_STORE_URL=sqlite:///canary-bot.db) lives. Mount a volume there to keep it.
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /app canary
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# Numeric, so the host and orchestrators can resolve it without the image's /etc/passwd (hadolint DL3066).
USER 10001:10001

EXPOSE 3000
# `canary-bot serve` answers /healthz on $PORT in both modes: in HTTP mode beside /slack/*, in Socket Mode
# from a small side server (see bot/http_server.py). urlopen raises on a 503 (exit 1), so an unhealthy bot fails
# the check. Exec form (no shell): the port comes from the environment inside Python.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '3000'), timeout=4)"]

CMD ["canary-bot", "serve"]
