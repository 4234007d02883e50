# A stand-in for node:20-bookworm-slim where no image registry is reachable: the local Debian
# bookworm root file system plus THIS machine's Node 20 and npm (copied in, as they are).
# Built by test/containers/local-bases.ts; never used by a build with public images.
ARG BOOKWORM_IMAGE
FROM ${BOOKWORM_IMAGE}
COPY node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
# This machine reaches the npm registry through a TLS proxy whose CA is in its own bundle; the
# build stage's `npm i -g pnpm` and `pnpm fetch` need it. It belongs to the machine, so it lives
# in the machine's base image, and infra/Dockerfile stays the one built with public images.
COPY ca-bundle.crt /usr/local/share/chat-local/ca-bundle.crt
ENV NODE_EXTRA_CA_CERTS=/usr/local/share/chat-local/ca-bundle.crt
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && groupadd --gid 1000 node \
 && useradd --uid 1000 --gid node --shell /bin/bash --create-home node \
 && node --version && npm --version
CMD ["node"]
