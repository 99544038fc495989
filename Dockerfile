# newsbot: a long-lived worker beside an article store.
#   docker build -t newsbot .
#   docker run -v newsbot-data:/data -v /path/to/store:/articles:ro \
#     -e DISCORD_TOKEN_FILE=/run/secrets/discord_token newsbot

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Dependencies first so that a code change does not reinstall them.
COPY pyproject.toml README.md ./
COPY bot ./bot
RUN python -m venv /opt/newsbot \
    && /opt/newsbot/bin/pip install --no-compile . \
    && /opt/newsbot/bin/python -m compileall -q /opt/newsbot/lib

FROM python:3.11-slim
LABEL org.opencontainers.image.title="newsbot" \
      org.opencontainers.image.description="Posts quality news from an article store to Discord, Slack and the terminal"
RUN groupadd --system --gid 10001 newsbot \
    && useradd --system --uid 10001 --gid newsbot --home-dir /data --no-create-home newsbot \
    && mkdir -p /data /articles \
    && chown newsbot:newsbot /data
COPY --from=build /opt/newsbot /opt/newsbot
COPY docker/config.toml /etc/newsbot/config.toml
ENV PATH=/opt/newsbot/bin:$PATH \
    NEWSBOT_CONFIG=/etc/newsbot/config.toml \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
# Exit 0 while the worker's heartbeat is recent and the store is readable.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["newsbot", "healthcheck"]
# SIGTERM (docker stop) lets sends in flight finish; the default 10 s grace is enough.
STOPSIGNAL SIGTERM
ENTRYPOINT ["newsbot"]
CMD ["run"]
