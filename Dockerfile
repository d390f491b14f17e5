# deepwatch: one binary (agent, gateway, analyzer, rules, load, ...) in a small non-root image.
#
#   docker build -t deepwatch:0.1.0 .
#   docker run --rm deepwatch:0.1.0 --version
#
# The build stage compiles the release binary with Kubernetes scaling (`--features k8s`); the
# runtime stage is distroless (glibc, CA certificates, no shell, no package manager) and runs as
# uid/gid 65532. The tag matches `rules.kubernetes.image` in deepwatch.toml, which the generated
# manifests (deploy/kubernetes) use.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
# The registry and target caches survive between builds (BuildKit); the binary is copied out of
# the cached target folder, which does not reach the next stage.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p deepwatch --features k8s \
    && install -D -m 0755 target/release/deepwatch /out/usr/local/bin/deepwatch \
    && /out/usr/local/bin/deepwatch --version \
    && install -d -m 0750 /out/var/lib/deepwatch

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/usr/local/bin/deepwatch /usr/local/bin/deepwatch
# State (the analyzer's alert journal and audit log, reports); a volume in production.
COPY --from=build --chown=65532:65532 /out/var/lib/deepwatch /var/lib/deepwatch
USER 65532:65532
WORKDIR /var/lib/deepwatch
# gateway proxy, analyzer, agent, gateway admin and /metrics
EXPOSE 8080 9466 9844 9845
ENTRYPOINT ["/usr/local/bin/deepwatch"]
CMD ["--help"]
