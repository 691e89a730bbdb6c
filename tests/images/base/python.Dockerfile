# Test stand-in for python:3.11.14-slim-bookworm: no image registry is reachable from the machines
# these tests run on, so it is a debootstrap bookworm rootfs with Debian's Python 3.11 (3.11.2),
# pip and venv, reachable as /usr/local/bin/python3 like in the official image, and without the
# EXTERNALLY-MANAGED marker so that `pip install` works there as it does in the official image.
ARG BASE
FROM ${BASE}
ENV LANG=C.UTF-8
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-pip \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb \
 && rm -f /usr/lib/python3.11/EXTERNALLY-MANAGED \
 && ln -s /usr/bin/python3 /usr/local/bin/python3 \
 && ln -s python3 /usr/local/bin/python \
 && ln -s /usr/bin/pip3 /usr/local/bin/pip3 \
 && ln -s pip3 /usr/local/bin/pip
# Containers reach the registries through a TLS-intercepting proxy whose CA is only in the host's
# bundle; pip and uv read it from these variables. Copied after apt so no trigger rewrites it.
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
RUN python3 --version && pip --version
CMD ["python3"]
