# sigma-grpc: multi-stage build, runs as a non-root user.
# Point SIGMA_DATABASE_URL at PostgreSQL 13+; without it the service starts an
# embedded PostgreSQL under SIGMA_DATA_DIR (mount a volume there).
FROM python:3.11-slim AS build
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sigma_grpc ./sigma_grpc
RUN pip install --no-cache-dir .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 sigma \
    && mkdir -p /app/data \
    && chown sigma:sigma /app/data
COPY --from=build /opt/venv /opt/venv
COPY migrations /app/migrations
# Listening on every interface, the service refuses to start without credentials:
# mount a tokens file and set SIGMA_AUTH_TOKENS_FILE (or SIGMA_AUTH=none on a
# trusted network). README: "Running in production".
ENV PATH=/opt/venv/bin:$PATH \
    SIGMA_MIGRATIONS_DIR=/app/migrations \
    SIGMA_DATA_DIR=/app/data \
    SIGMA_GRPC_ADDR=0.0.0.0:50051 \
    SIGMA_HTTP_ADDR=0.0.0.0:8080
WORKDIR /app
USER sigma
EXPOSE 50051 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["sigma-grpc", "healthcheck"]
ENTRYPOINT ["sigma-grpc"]
CMD ["serve"]
