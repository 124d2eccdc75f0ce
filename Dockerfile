# herd's container image: a build stage with the Rust toolchain, and a slim final stage that
# holds only the herd binary (and the C runtime it links against).
#   docker build -t herd .
#   docker run --rm --security-opt seccomp=deploy/seccomp/herd-io-uring.json herd run --help
# glommio needs io_uring, which Docker's and containerd's default seccomp profiles block:
# deploy/seccomp/ holds a profile that allows it; docs/KUBERNETES.md has the pod's settings.

# The toolchain herd is built and tested with; bookworm matches the final stage's glibc.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Dependencies first, so that changing herd's sources does not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY src ./src
# The stub's build outputs are older than the real sources: touch so cargo rebuilds herd itself.
RUN touch src/main.rs src/lib.rs && cargo build --release --locked \
    && strip target/release/herd

# distroless/cc: glibc and libgcc, no shell, no package manager. It runs as the image's
# unprivileged user (uid 65532): herd raises its soft RLIMIT_NOFILE up to the hard limit the
# runtime grants, which needs no root and no capability; raising the hard limit itself would.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/herd /usr/local/bin/herd
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/herd"]
CMD ["--help"]
