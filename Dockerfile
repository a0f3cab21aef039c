# syntax=docker/dockerfile:1
#
# agyn-secrets container image.
#   docker build -t ghcr.io/agyn/agyn-secrets:0.1.0 .
#
# The builder matches the toolchain pinned in rust-toolchain.toml, so rustup
# does not fetch another one during the build.
ARG RUST_VERSION=1.95.0

FROM rust:${RUST_VERSION}-bookworm AS builder
ARG RUST_VERSION
# Use the image's toolchain (the same version as rust-toolchain.toml) without
# installing the file's extra components (rustfmt, clippy), which a release
# build does not need.
ENV RUSTUP_TOOLCHAIN=${RUST_VERSION}
WORKDIR /src
COPY . .
# The cache mounts keep downloaded crates and compiled dependencies between
# builds; the binary is copied out of the cached target directory.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin agyn-secrets \
    && install -D -m 0755 target/release/agyn-secrets /out/agyn-secrets
# The exec wrapper, linked statically: the webhook's init container copies it
# into workload containers, whose images may have no libc or another one.
# The script prints the binary's path on its last line; its output goes to a
# file first, so that a failed build fails this step (sh has no pipefail).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    scripts/build-exec.sh --release >/tmp/build-exec.out \
    && install -D -m 0555 "$(tail -n 1 /tmp/build-exec.out)" /out/agyn-secrets-exec

# Distroless: glibc, libgcc and the CA roots (/etc/ssl/certs), no shell, no
# package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="agyn-secrets" \
      org.opencontainers.image.description="Kubernetes admission webhook that injects organization secrets into pods, and its management API" \
      org.opencontainers.image.source="https://github.com/agyn/agyn-secrets" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=builder /out/agyn-secrets /usr/local/bin/agyn-secrets
COPY --from=builder /out/agyn-secrets-exec /usr/local/bin/agyn-secrets-exec
# 65532 is distroless' "nonroot"; numeric so that runAsNonRoot can verify it.
USER 65532:65532
# 8443: admission webhook (HTTPS); 8444: exec listener, where the wrapper in
# workload pods fetches its values (HTTPS); 8080: API, probes and /metrics
# (HTTP).
EXPOSE 8443 8444 8080
ENTRYPOINT ["/usr/local/bin/agyn-secrets"]
CMD ["serve"]
