# Dockerfile - gru-serve, the GRU sentiment HTTP service, with the shipped models.
#   docker build -t gru-serve .          (or: podman build --format docker -t gru-serve .)
#   docker run --rm -p 127.0.0.1:8080:8080 gru-serve
# Without a registry, build on a local Debian 12 image: --build-arg BASE=localhost/debian:bookworm-slim
# (tests/deploy/container_test.sh makes one with debootstrap). Deployment notes: deploy/README.md.
ARG BASE=debian:bookworm-slim

# --- build: compilers and the -dev packages; only gru-serve and the libraries it links --------
FROM ${BASE} AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev make cmake pkg-config \
        libopenblas-dev libjansson-dev libmicrohttpd-dev libuv1-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Portable build (no -march=native): the engine picks its AVX2/AVX-512 kernels at run time.
# No tests here (GRU_TESTS=OFF: no cmocka, tests/ is not in the build context).
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DGRU_NATIVE=OFF -DGRU_TESTS=OFF \
 && cmake --build /build --target gru-serve -j"$(nproc)" \
 && strip /build/server/gru-serve \
 && /build/server/gru-serve --version

# --- runtime: the runtime libraries, the binary, the models; no compiler, no curl -------------
FROM ${BASE}
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends libopenblas0-pthread libjansson4 libmicrohttpd12 libuv1 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb /var/log/apt /var/log/dpkg.log \
 && groupadd --system --gid 10001 gru \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin gru
COPY --from=build /build/server/gru-serve /usr/local/bin/gru-serve
COPY deploy/healthcheck.sh /usr/local/bin/gru-healthcheck
COPY models/ /opt/gru-serve/models/
WORKDIR /opt/gru-serve
# Every setting is a GRU_SERVE_* variable (gru-serve --help); the container listens on all
# interfaces. Files stay root-owned and read-only: the server writes nothing.
ENV GRU_SERVE_HOST=0.0.0.0 \
    GRU_SERVE_PORT=8080 \
    GRU_SERVE_MODELS_DIR=/opt/gru-serve/models
# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
EXPOSE 8080
# SIGTERM: /readyz turns 503, in-flight requests finish (GRU_SERVE_DRAIN_TIMEOUT_MS, 10 s by
# default), exit 0. Give `docker stop` more than that: docker stop -t 15.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 CMD ["/usr/local/bin/gru-healthcheck"]
ENTRYPOINT ["/usr/local/bin/gru-serve"]
