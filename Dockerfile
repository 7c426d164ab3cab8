# One image for both subcommands: `switchboard controller` (Deployment) and `switchboard speaker` (DaemonSet).
FROM node:20-bookworm AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends g++ make python3 && rm -rf /var/lib/apt/lists/*
# node-gyp builds the raw-socket addon against this image's own Node headers (/usr/local/include/node), not a download.
ENV npm_config_nodedir=/usr/local
COPY package.json package-lock.json ./
RUN npm install --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY api api
COPY crds crds
COPY controllers controllers
COPY allocators allocators
COPY cmd cmd
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
# nft: the speaker's handover forwarding (controllers/speaker/handover-forward.ts).
RUN apt-get update && apt-get install -y --no-install-recommends nftables && rm -rf /var/lib/apt/lists/*
# The V8 heap cap (issue 13): without it V8 let the heap grow to 400-470 MB around ~100 MB of live objects. Sized
# from bench-compare's live heap after full GCs, about 2x the live set of a 10,000-pod cluster (README, Benchmarks:
# how to size it for larger clusters; config/manager/deployment.yaml sets it with the container limit).
ENV NODE_ENV=production \
    NODE_OPTIONS=--max-old-space-size=160 \
    SWITCHBOARD_RAWSOCK_ADDON=/app/native/switchboard_rawsock.node
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/controllers/speaker/native/build/Release/switchboard_rawsock.node ./native/
# The controller runs as this user; the speaker's DaemonSet overrides it with root plus only NET_RAW.
USER 65532:65532
ENTRYPOINT ["node", "/app/dist/cmd/switchboard.js"]
CMD ["controller"]
