# The Taskgate server (docs/install-server.md):
#   docker build -t taskgate-server .
#   docker run -d --name taskgate -p 7070:7070 -v taskgate-data:/var/lib/taskgate taskgate-server
# What to set: the data dir (a volume at /var/lib/taskgate), the ports
# (7070 for the API and agents; TASKGATE_AGENT_LISTEN, TASKGATE_METRICS_LISTEN
# for more), TLS (TASKGATE_TLS_CERT, TASKGATE_TLS_KEY: files mounted into
# the container) and TASKGATE_MONGODB_URI (else the embedded SQLite store in
# the data dir). Every flag of `taskgate server` has such a variable.

# The same commands as an install from a checkout: npm ci builds (its
# prepare script runs tsc), better-sqlite3 and node-pty compile with the
# image's toolchain, then the dev dependencies go.
FROM node:20-bookworm AS build
WORKDIR /opt/taskgate
COPY . .
RUN npm ci --no-audit --no-fund && npm prune --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
WORKDIR /opt/taskgate
COPY --from=build /opt/taskgate/package.json ./
COPY --from=build /opt/taskgate/node_modules ./node_modules
COPY --from=build /opt/taskgate/dist/cli ./dist/cli
COPY --from=build /opt/taskgate/dist/server ./dist/server
COPY --from=build /opt/taskgate/dist/agent ./dist/agent
COPY --from=build /opt/taskgate/dist/shared ./dist/shared
COPY --from=build /opt/taskgate/dist/gen ./dist/gen
# The web console's build (docs/console.md), served by the HTTP listener.
COPY --from=build /opt/taskgate/dist/console ./dist/console
# Read at run time: reflection descriptors (gen/descriptors.binpb, gen/health.binpb) and the CLI's JSON output.
COPY --from=build /opt/taskgate/gen ./gen
RUN useradd --system --uid 10001 --home-dir /var/lib/taskgate --shell /usr/sbin/nologin taskgate \
  && install -d -o taskgate -g taskgate -m 0700 /var/lib/taskgate
USER taskgate
ENV TASKGATE_DATA_DIR=/var/lib/taskgate \
    TASKGATE_LISTEN=0.0.0.0:7070
VOLUME /var/lib/taskgate
EXPOSE 7070
ENTRYPOINT ["node", "/opt/taskgate/dist/cli/main.js", "server"]
