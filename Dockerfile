# syntax=docker/dockerfile:1
#
# execrole container image.
#
#   docker build -t execrole:dev .
#   docker run --rm -p 9464:9464 -v "$PWD/config.yaml:/etc/execrole/config.yaml:ro" execrole:dev
#
# Stage 1 builds the release binary with a dependency-caching layer; stage 2 is distroless (glibc, libgcc, CA
# certificates, no shell, no package manager) running as the unprivileged `nonroot` user (65532). The TLS stack is
# rustls, so no OpenSSL is needed at run time. The builder (Debian bookworm) and the runtime (Debian 12) share the
# same glibc, so the dynamically linked binary runs unchanged.
#
# The image carries no configuration: bake one in with a two-line Dockerfile FROM this image, or mount one
# (see deploy/README.md). The config must set `http.listen: "0.0.0.0:9464"` for Prometheus and the health check
# to reach the server from outside the loopback interface.

ARG RUST_VERSION=1.95

############################################################################
# Builder
############################################################################
FROM rust:${RUST_VERSION}-bookworm AS builder

WORKDIR /build
ENV CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0

# 1. Dependencies only: a dummy crate with the real manifest and lock file. This layer is rebuilt only when
#    Cargo.toml or Cargo.lock change, so editing src/ does not recompile the AWS SDK (~9 min on 2 cores).
#    If Cargo.toml ever names a build script or targets by explicit path ([[test]], [[bench]], build = ...), copy
#    or stub those here too, or cargo refuses the manifest.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src \
 && echo 'fn main() {}' > src/main.rs \
 && : > src/lib.rs \
 && cargo build --release --locked --bin execrole \
 && rm -rf src \
      target/release/execrole target/release/execrole.d \
      target/release/deps/execrole-* target/release/deps/libexecrole-* \
      target/release/.fingerprint/execrole-*

# 2. The container health probe (deploy/docker/healthprobe.c): a static, loopback-only HTTP GET, because the
#    distroless runtime has no shell or curl for an ECS container health check.
COPY deploy/docker/healthprobe.c /tmp/healthprobe.c
RUN gcc -static -Os -s -Wall -Wextra -Werror -o /build/healthprobe /tmp/healthprobe.c

# 3. The real sources. `touch` makes sure cargo sees them as newer than the dummy build, whatever mtimes the build
#    context carried. The last check: the binary allocates through jemalloc with its own options (src/allocator.rs),
#    which jemalloc prints when asked to.
COPY src ./src
RUN find src -type f -exec touch {} + \
 && cargo build --release --locked --bin execrole \
 && strip target/release/execrole \
 && ./target/release/execrole --help > /dev/null \
 && _RJEM_MALLOC_CONF=stats_print:true ./target/release/execrole --version 2>&1 | grep -q 'opt.narenas: 1'

############################################################################
# Runtime
############################################################################
FROM gcr.io/distroless/cc-debian12:nonroot

ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown

LABEL org.opencontainers.image.title="execrole" \
      org.opencontainers.image.description="Keeps Amazon ECS task execution roles exactly as permissive as their task definitions need" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"

COPY --from=builder /build/target/release/execrole /execrole
COPY --from=builder /build/healthprobe /healthprobe

# Numeric, so orchestrators that check "runs as non-root" (Kubernetes runAsNonRoot) can verify it.
USER 65532:65532

# /metrics, /healthz, /readyz (config key http.listen).
EXPOSE 9464

ENTRYPOINT ["/execrole"]
CMD ["run", "--config", "/etc/execrole/config.yaml"]
