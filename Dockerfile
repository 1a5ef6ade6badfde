# One image, three commands: `tokenpool operator`, `tokenpool proxy` and `tokenpool console` (the
# chart passes the command as the container's args). Multi-stage: the build stage resolves the pinned
# dependencies into a virtualenv; the runtime stage copies only that virtualenv.
#
# The base is any Debian-based image with Python 3.11 and its venv module: the official Python
# image (default, below), or a debootstrap bookworm root filesystem where no registry is reachable
# (hack/cluster/build-images.sh; docs/install.md). A CA bundle for pip (a TLS-intercepting proxy)
# is passed as the BuildKit secret `pip-ca` (`--secret id=pip-ca,src=$PIP_CERT`): it is mounted for
# the one RUN that needs it and never stored in a layer.
#
# Pin the base image by digest for reproducible, tamper-evident builds. The digest below is a
# placeholder: resolve the real one and pass it (docs/install.md), e.g.
#   docker build --build-arg PYTHON_IMAGE="python:3.11-slim-bookworm@$(docker buildx imagetools \
#     inspect python:3.11-slim-bookworm --format '{{json .Manifest.Digest}}' | tr -d '"')" .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:0000000000000000000000000000000000000000000000000000000000000000

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/tokenpool
WORKDIR /src
# Dependencies are pinned exactly in pyproject.toml: the same versions the tests ran with.
COPY pyproject.toml README.md ./
COPY tokenpool ./tokenpool
COPY operator ./operator
COPY proxy ./proxy
COPY console ./console
# Only the runtime dependencies (`pip install .`, no extras; the wheel leaves out tokenpool.dev):
# the image runs the operator, the proxy, the console and the admin commands.
RUN --mount=type=secret,id=pip-ca \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
    && /opt/tokenpool/bin/pip install --no-compile . \
    && /opt/tokenpool/bin/python -m compileall -q /opt/tokenpool/lib

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="tokenpool" \
      org.opencontainers.image.description="Kubernetes-native token pool: operator, proxy and console" \
      org.opencontainers.image.licenses="Apache-2.0"
# Read-only root filesystem at run time: no bytecode writes, HOME on the /tmp volume the chart
# mounts; unbuffered logs.
ENV PATH=/opt/tokenpool/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/tmp
COPY --from=build /opt/tokenpool /opt/tokenpool
# A numeric non-root user, so Kubernetes can verify runAsNonRoot without a passwd lookup; it also
# has a passwd entry, because code asks for its name (Kopf's peering identity calls
# getpass.getuser(): without the entry the operator exits with "getpwuid(): uid not found").
RUN echo "tokenpool:x:65532:65532:tokenpool:/tmp:/usr/sbin/nologin" >> /etc/passwd \
    && echo "tokenpool:x:65532:" >> /etc/group
USER 65532:65532
EXPOSE 8080 8081 8090
ENTRYPOINT ["tokenpool"]
CMD ["proxy"]
