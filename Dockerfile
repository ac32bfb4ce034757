# Multi-stage build: static binaries on a distroless, non-root base. Two
# images from one build stage:
#   docker build -t telegate .                                  (the last stage: the full binary, the gateway)
#   docker build --target client -t telegate-client .           (the lean client alone)
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG REVISION=unknown
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.revision=${REVISION}" \
      -o /out/telegate ./cmd/telegate && \
    CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.revision=${REVISION}" \
      -o /out/telegate-client ./cmd/telegate-client

# The cluster-side client: `telegate client` alone, same flags.
FROM gcr.io/distroless/static-debian12:nonroot AS client
COPY --from=build /out/telegate-client /usr/bin/telegate-client
USER 65532:65532
EXPOSE 9002
ENTRYPOINT ["/usr/bin/telegate-client"]
CMD ["--config.file=/etc/telegate-client/config/client.yaml"]

# The default image: every command (gateway, client, allowlist).
FROM gcr.io/distroless/static-debian12:nonroot AS gateway
COPY --from=build /out/telegate /usr/bin/telegate
USER 65532:65532
EXPOSE 9003 9004
ENTRYPOINT ["/usr/bin/telegate"]
CMD ["gateway", "--config.file=/etc/telegate/gateway.yaml"]
