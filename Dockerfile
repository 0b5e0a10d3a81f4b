# gracefulinit distribution image: two static binaries and their licenses.
# It is not meant to be run on its own; copy the binary into your app's image:
#
#   COPY --from=ghcr.io/gracefulinit/gracefulinit:VERSION /gracefulinit /gracefulinit
#   ENTRYPOINT ["/gracefulinit", "--grace-period", "30s", "-e", "143", "--"]
#   CMD ["java", "-jar", "/app/app.jar"]
#
# /gracefulinit is all that every mode needs but one. --nacos-mode register
# runs the Nacos SDK in a helper process, /gracefulinit-nacos, which
# gracefulinit looks for in its own directory: copy it too, for that mode only:
#
#   COPY --from=ghcr.io/gracefulinit/gracefulinit:VERSION /gracefulinit-nacos /gracefulinit-nacos
#
# Build (docker buildx or podman; cross-compiles, no emulation needed):
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=$(git describe --tags) --build-arg COMMIT=$(git rev-parse HEAD) \
#     -t gracefulinit:dev .

# The build stage runs on the builder's own platform and cross-compiles,
# because Go needs no emulation to target another architecture.
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS=linux
ARG TARGETARCH
ARG VERSION=dev
ARG COMMIT=unknown
WORKDIR /src
# Dependencies first, so source edits do not re-download modules.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ENV CGO_ENABLED=0
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    set -eu; \
    ldflags="-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}"; \
    GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags "$ldflags -E _gracefulinit_rt0" -o /out/gracefulinit ./cmd/gracefulinit; \
    GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags "$ldflags" -o /out/gracefulinit-nacos ./cmd/gracefulinit-nacos; \
    go run ./internal/thirdparty/cmd/thirdparty-licenses -o /out/THIRD_PARTY_LICENSES /out/gracefulinit /out/gracefulinit-nacos; \
    cp LICENSE /out/LICENSE

FROM scratch
ARG VERSION=dev
ARG COMMIT=unknown
LABEL org.opencontainers.image.title="gracefulinit" \
      org.opencontainers.image.description="Static PID-1 supervisor for Java microservices on Kubernetes: reaps zombies, forwards signals, takes the instance out of Nacos/Eureka and drains before stopping the app within the grace period" \
      org.opencontainers.image.source="https://github.com/gracefulinit/gracefulinit" \
      org.opencontainers.image.url="https://github.com/gracefulinit/gracefulinit" \
      org.opencontainers.image.documentation="https://github.com/gracefulinit/gracefulinit#readme" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}"
COPY --from=build /out/gracefulinit /gracefulinit
COPY --from=build /out/gracefulinit-nacos /gracefulinit-nacos
# Apache-2.0, and the license files of every module the binaries link.
COPY --from=build /out/LICENSE /out/THIRD_PARTY_LICENSES /
ENTRYPOINT ["/gracefulinit"]
CMD ["--version"]
