# Build: docker build -t idgraph .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p idgraph && strip target/release/idgraph

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home /var/lib/idgraph --create-home idgraph
COPY --from=build /src/target/release/idgraph /usr/local/bin/idgraph
USER idgraph
WORKDIR /var/lib/idgraph
ENV IDGRAPH_LOG_FORMAT=json
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/idgraph"]
CMD ["serve", "--listen", "0.0.0.0:8080"]
