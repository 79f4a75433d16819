# Build a static orderhook binary (pure Go: the SQLite driver needs no cgo)
# and run it as an unprivileged user on a minimal base.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/orderhook ./cmd/orderhook

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/orderhook /usr/local/bin/orderhook
ENV ORDERHOOK_ADDR=0.0.0.0:8080
EXPOSE 8080
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/orderhook"]
CMD ["serve"]
