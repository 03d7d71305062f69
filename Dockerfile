# syntax=docker/dockerfile:1
#
# One image for all three services; docker-compose.yml picks the process with `command`.
# The default CMD runs the gateway.

# --- builder: build the project's wheel (hatchling) and install it with its dependencies into
# a virtualenv. Anything needed only to build stays in this stage.
FROM python:3.11-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv

WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/root/.cache/pip \
    /opt/venv/bin/pip install ./sdk .

# --- browser: the dashboard's third-party browser code (npm yjs, y-websocket, y-indexeddb), which the
# gateway serves from its own files
FROM node:20-slim AS browser
WORKDIR /vendor
COPY gateway/dashboard/vendor/package.json gateway/dashboard/vendor/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error

# --- runtime: the interpreter, the virtualenv, and nothing else. No compilers, no source tree.
FROM python:3.11-slim AS runtime

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

RUN groupadd --system --gid 10001 seedos \
    && useradd --system --uid 10001 --gid seedos --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin seedos

COPY --from=builder /opt/venv /opt/venv
COPY --from=browser /vendor/node_modules \
    /opt/venv/lib/python3.11/site-packages/gateway/dashboard/vendor/node_modules

WORKDIR /app
USER 10001:10001

# gateway, connector_service, marketplace_service
EXPOSE 8000 8001 8002

# No HEALTHCHECK here: the same image serves three ports, so each compose service declares its
# own check against its /readyz.
# gateway.serve: uvicorn with the gateway's TLS 1.3-only HTTPS when SEEDOS_GATEWAY_TLS_* are set
CMD ["python", "-m", "gateway.serve", "--host", "0.0.0.0", "--port", "8000"]
