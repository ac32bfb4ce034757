# Multi-stage build: a static binary on a distroless, non-root base.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG REVISION=unknown
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.revision=${REVISION}" \
      -o /out/telegate ./cmd/telegate

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/telegate /usr/bin/telegate
USER 65532:65532
EXPOSE 9003 9004
ENTRYPOINT ["/usr/bin/telegate"]
CMD ["gateway", "--config.file=/etc/telegate/gateway.yaml"]
