# recon as a container: `recon serve` (webhooks, scheduled sweeps, metrics,
# /healthz, /readyz) on port 8080, as a non-root user.
#
#   docker build -t recon .
#   docker run --rm -p 8080:8080 -e DATABASE_URL=postgres://… -e STRIPE_SECRET_KEY=… recon
#
# The production binary: every provider, without the simulator and
# `recon demo` (build with --build-arg FEATURES=demo,recon-stripe,… to keep
# them). See deploy/compose.yaml and deploy/kubernetes.yaml.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
ARG FEATURES=recon-stripe,recon-clerk,recon-paddle
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p recon-bin --no-default-features --features "${FEATURES}" \
    && cp target/release/recon /usr/local/bin/recon \
    && strip /usr/local/bin/recon

FROM debian:bookworm-slim
# ca-certificates: the providers' TLS roots; curl: the health check.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/recon --create-home recon
COPY --from=build /usr/local/bin/recon /usr/local/bin/recon
USER recon
WORKDIR /var/lib/recon
ENV RECON_LISTEN=0.0.0.0:8080 \
    RECON_LOG_FORMAT=json
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["recon"]
CMD ["serve"]
