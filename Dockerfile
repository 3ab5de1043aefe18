# insightbot: slim Python, non-root, SQLite data on a volume, health checked on /healthz.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DATABASE_URL=sqlite+aiosqlite:////data/insightbot.db \
    HOST=0.0.0.0 \
    PORT=3000

WORKDIR /app
COPY pyproject.toml README.md ./
COPY adapters ./adapters
COPY bot ./bot
COPY storage ./storage
RUN pip install . \
 && useradd --create-home --uid 10001 insightbot \
 && mkdir -p /data && chown insightbot:insightbot /data

USER insightbot
VOLUME ["/data"]
EXPOSE 3000

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD python -c "import os,urllib.request,sys; sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\",\"3000\")}/healthz', timeout=4).status == 200 else 1)"

ENTRYPOINT ["insightbot"]
CMD ["serve"]
