# Test stand-in for node:20.20.2-bookworm-slim: no image registry is reachable from the machines
# these tests run on, so it is a debootstrap bookworm rootfs plus the host's Node 20 (a Debian-12
# glibc build), laid out like the official image (/usr/local/bin/node, npm and corepack).
ARG BASE
FROM ${BASE}
# Containers reach the registries through a TLS-intercepting proxy whose CA is only in the host's
# bundle; Node ignores the system store unless told.
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV NODE_VERSION=20.20.2 \
    NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
# The npm registry as seen from here serves package metadata without signatures, so corepack's
# signature check must be off (the sha512 integrity of the tarball is still verified). Official
# images talking to the real registry need none of this.
ENV COREPACK_INTEGRITY_KEYS=0
COPY node /usr/local/bin/node
COPY node_modules /usr/local/lib/node_modules
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && ln -s ../lib/node_modules/corepack/dist/corepack.js /usr/local/bin/corepack \
 && groupadd --gid 1000 node \
 && useradd --uid 1000 --gid node --shell /bin/bash --create-home node \
 && node --version && npm --version && corepack --version
CMD ["node"]
