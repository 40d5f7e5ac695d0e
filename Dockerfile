# wsproxy container image: a static binary on an empty base, run as a
# non-root user. No shell, no package manager, nothing written at run time,
# so the root filesystem can be read-only:
#
#   docker build -t wsproxy --build-arg VERSION=1.2.3 .
#   docker run --read-only -p 8080:8080 wsproxy
#   docker run --read-only -p 8080:8080 -e WSPROXY_SOURCES_DEMO_ENABLED=false \
#     -e WSPROXY_SOURCES_REDIS_ENABLED=true -e WSPROXY_SOURCES_REDIS_ADDR=redis:6379 wsproxy
#   docker run --read-only -v $PWD/prod.yaml:/etc/wsproxy/config.yaml:ro wsproxy
#
# Configuration: the file /etc/wsproxy/config.yaml (the repository's
# config.yaml unless one is mounted over it), and WSPROXY_* environment
# variables over it. deploy/dockerfile_test.go checks this file's stages,
# user, health check and build command.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/wsproxy .

FROM scratch AS runtime
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/wsproxy /wsproxy
COPY --from=build /src/config.yaml /etc/wsproxy/config.yaml
USER 65532:65532
EXPOSE 8080 9090
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/wsproxy", "healthcheck", "-config", "/etc/wsproxy/config.yaml", "-path", "/livez"]
ENTRYPOINT ["/wsproxy"]
CMD ["-config", "/etc/wsproxy/config.yaml"]
