# uniqwatch in a container: built in the Rust image, run in Debian slim as
# an unprivileged user.
#
#   docker build --build-arg UNIQWATCH_REVISION=$(git rev-parse HEAD) -t uniqwatch:0.1.0 .
#   docker run -p 9716:9716 -e UNIQWATCH_MONGODB_URI='mongodb://...' \
#     -v /path/to/uniqwatch.toml:/etc/uniqwatch/uniqwatch.toml:ro \
#     -v uniqwatch-state:/var/lib/uniqwatch uniqwatch:0.1.0
#
# The build context has no .git (.dockerignore), so the revision comes from
# the build argument; without it, uniqwatch_build_info says
# revision="unknown".
#
# Not built or run on the machine this was written on (it has no Docker
# engine): the README says what was tested and what was not.

FROM rust:1.95-bookworm AS builder
WORKDIR /src
ARG UNIQWATCH_REVISION=unknown
ENV UNIQWATCH_REVISION=${UNIQWATCH_REVISION} CARGO_INCREMENTAL=0
COPY . .
RUN cargo build --release --locked --bin uniqwatch \
    && cp target/release/uniqwatch /usr/local/bin/uniqwatch

FROM debian:bookworm-slim
# ca-certificates for TLS to MongoDB; curl for the HEALTHCHECK.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 uniqwatch \
    && useradd --system --uid 10001 --gid uniqwatch --home-dir /var/lib/uniqwatch --shell /usr/sbin/nologin uniqwatch \
    && install -d -o uniqwatch -g uniqwatch -m 0750 /var/lib/uniqwatch
COPY --from=builder /usr/local/bin/uniqwatch /usr/bin/uniqwatch
COPY packaging/uniqwatch.toml /etc/uniqwatch/uniqwatch.toml
COPY alerts/ /usr/share/uniqwatch/alerts/
COPY dashboards/ /usr/share/uniqwatch/dashboards/
COPY docs/ /usr/share/uniqwatch/docs/
USER uniqwatch:uniqwatch
ENV UNIQWATCH_CONFIG=/etc/uniqwatch/uniqwatch.toml UNIQWATCH_LOG_FORMAT=json
VOLUME /var/lib/uniqwatch
EXPOSE 9716
# /healthz answers 200 while the process serves. With TLS or basic auth on
# the endpoints, change this command to match (curl's --cacert, --user).
# Alive when /healthz answers 200, or 401 once basic auth is on; -k and the
# https URL when a web config turns TLS on (set UNIQWATCH_HEALTH_URL).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD code=$(curl -ks -o /dev/null -w '%{http_code}' "${UNIQWATCH_HEALTH_URL:-http://127.0.0.1:9716/healthz}"); [ "$code" = 200 ] || [ "$code" = 401 ] || exit 1
ENTRYPOINT ["/usr/bin/uniqwatch"]
CMD ["run"]
