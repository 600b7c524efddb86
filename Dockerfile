# syntax=docker/dockerfile:1
#
# One image, two binaries: `couplet-api` (default command) and `couplet-worker`.
#
#   docker build -t pixel-couplet .
#   docker run --rm -p 8080:8080 -e REDIS_URL=redis://host:6379/0 pixel-couplet
#   docker run --rm -e REDIS_URL=... pixel-couplet couplet-worker
#
# Stages:
#   builder  compiles both binaries (Cargo.lock is honoured: --locked)
#   ort      takes the ONNX Runtime shared library out of the PyPI wheel
#            onnxruntime==1.31.1 (the `ort` crate loads it at run time from
#            ORT_DYLIB_PATH, feature load-dynamic); pip picks the wheel for the
#            build platform, so amd64 and arm64 builds both work
#   runtime  debian:bookworm-slim (same glibc as the builder), non-root

ARG ORT_VERSION=1.31.1

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
# Cache mounts keep the registry and target dir between builds; the binaries
# are copied out of the cached target dir because it is not part of the layer.
# `dist` is the shipped build: release with whole-program LTO (Cargo.toml).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --profile dist --locked -p couplet-api -p couplet-worker \
 && mkdir -p /out \
 && cp target/dist/couplet-api target/dist/couplet-worker /out/

FROM python:3.11-slim AS ort
ARG ORT_VERSION
WORKDIR /ort
RUN pip download --no-deps --only-binary=:all: --dest /tmp/wheel "onnxruntime==${ORT_VERSION}" \
 && python -c "import glob, zipfile; \
wheel = glob.glob('/tmp/wheel/onnxruntime-${ORT_VERSION}-*.whl')[0]; \
member = 'onnxruntime/capi/libonnxruntime.so.${ORT_VERSION}'; \
open('/ort/libonnxruntime.so.${ORT_VERSION}', 'wb').write(zipfile.ZipFile(wheel).read(member)); \
print('extracted', member, 'from', wheel)" \
 && test -s "/ort/libonnxruntime.so.${ORT_VERSION}"

FROM debian:bookworm-slim AS runtime
ARG ORT_VERSION
# ca-certificates: TLS to webhook receivers (and rediss://). curl: healthchecks.
# libstdc++6/libgcc-s1: needed by libonnxruntime (already in slim, kept explicit).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl libstdc++6 libgcc-s1 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 couplet \
 && useradd --system --uid 10001 --gid couplet --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin couplet

COPY --from=builder /out/couplet-api /out/couplet-worker /usr/local/bin/
COPY --from=ort /ort/libonnxruntime.so.${ORT_VERSION} /opt/onnxruntime/lib/libonnxruntime.so.${ORT_VERSION}
COPY models/default /opt/couplet/models/default

ENV ORT_DYLIB_PATH=/opt/onnxruntime/lib/libonnxruntime.so.${ORT_VERSION} \
    MODEL_DIR=/opt/couplet/models/default \
    LISTEN_ADDR=0.0.0.0:8080 \
    METRICS_ADDR=0.0.0.0:9091 \
    RUST_LOG=info

USER 10001:10001
EXPOSE 8080 9091
# No HEALTHCHECK here: the image runs two different binaries (API on 8080,
# worker on 9091), so the check belongs to the orchestrator (compose.yaml
# healthchecks, Kubernetes probes), which knows which one it started.
CMD ["couplet-api"]
