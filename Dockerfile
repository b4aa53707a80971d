# syntax=docker/dockerfile:1
#
# One image for every role of kb: `web` (daphne), `worker` (qcluster), `migrate`, `llm`
# (llama_cpp.server). See deploy/docker-entrypoint.sh and docs/deploy.md.
#
#   docker build -t kb .
#   docker run --rm -e DATABASE_URL=postgres://... -e SECRET_KEY=... -e ALLOWED_HOSTS=... -p 8000:8000 kb web
#
# Base images are pinned by tag; production builds can pin them by digest as well
# (--build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:...), see docs/deploy.md.
# `make image` builds this file with podman on a local stand-in made from Debian's packages
# (deploy/podman/bases.sh) where no registry can be reached.
# checkov:skip=CKV_DOCKER_7:the base image is this argument, whose default is a version tag
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------
# Builder: compile llama-cpp-python into a wheel. Its C++ core (llama.cpp / ggml) is built
# for a portable x86-64 baseline rather than for the build machine's CPU (GGML_NATIVE=OFF):
# AVX2/FMA/F16C, which every current EC2 x86-64 instance type has, and no AVX-512, so the
# image runs on any EKS node. Override with --build-arg LLAMA_CMAKE_ARGS=... if needed
# (for example "-DGGML_NATIVE=OFF -DGGML_AVX2=OFF -DGGML_FMA=OFF -DGGML_F16C=OFF" for
# very old CPUs).
# ---------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Pinning Debian package versions breaks the build at every point release of the base
# image; the base image tag (and digest, when pinned) fixes the toolchain instead.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*

ARG LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF -DGGML_AVX_VNNI=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF"
ENV CMAKE_ARGS=${LLAMA_CMAKE_ARGS} \
    CMAKE_BUILD_PARALLEL_LEVEL=4 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /build
COPY requirements.txt ./
# The version comes from requirements.txt, so the wheel always matches the pin there. pip runs
# from a virtualenv: a distribution's own Python (the stand-in base) may come without pip.
RUN spec="$(grep -E '^llama-cpp-python(\[[a-z,]+\])?==' requirements.txt | sed -E 's/\[[a-z,]+\]//')" \
    && test -n "$spec" \
    && python3 -m venv /opt/build \
    && /opt/build/bin/pip wheel --no-deps --no-binary llama-cpp-python --wheel-dir /wheels "$spec"

# ---------------------------------------------------------------------------------------
# Runtime: slim Python, the prebuilt llama-cpp-python wheel, the CPU build of torch,
# the application, collected static files, and a non-root user.
# ---------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# libgomp1: llama.cpp's OpenMP runtime. tini: PID 1 that forwards signals and reaps zombies.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 tini \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_HOME=/tmp/huggingface \
    XDG_CACHE_HOME=/tmp/cache \
    HOME=/tmp

# torch comes from PyTorch's CPU-only index (about 200 MB) as the CPU build by name
# (==<pin>+cpu) and is installed first, so that `pip install -r requirements.txt` finds
# torch==<pin> already satisfied (2.x.y+cpu matches ==2.x.y) and never pulls the multi-GB
# CUDA build from PyPI. Everything else comes from PyPI; llama-cpp-python comes only from the
# wheel built above (--only-binary). A mirror that holds the CPU build can stand in for
# PyTorch's index (--build-arg TORCH_INDEX_URL=...), and pip reads folders of wheels a build
# adds (such as one holding the torch CPU wheel) from PIP_FIND_LINKS: empty by default,
# `make image` passes the host's.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu \
    PIP_FIND_LINKS=""
# The wheel is copied rather than bind-mounted from the builder stage: buildah before 1.29
# (Debian 12's podman, `make image`) cannot mount a stage it took from its layer cache.
COPY requirements.txt /tmp/requirements.txt
COPY --from=builder /wheels /tmp/wheels
RUN python3 -m venv /opt/venv \
    && torch_version="$(sed -n -E 's/^torch==([^ ;#]+).*/\1/p' /tmp/requirements.txt)" \
    && test -n "$torch_version" \
    && pip install --index-url "$TORCH_INDEX_URL" "torch==${torch_version}+cpu" \
    && pip install --find-links /tmp/wheels --only-binary llama-cpp-python -r /tmp/requirements.txt \
    && python -c "import torch, sys; sys.exit(0 if torch.version.cuda is None else 'CUDA torch found')" \
    && rm -r /tmp/requirements.txt /tmp/wheels

# The code belongs to root and is read-only for the app user. So is the embedding model's
# ONNX export (EMBEDDING_BACKEND=onnx/openvino), built here from the installed weights into
# /app/var/embeddings (EMBEDDING_CACHE_DIR), so pods never build it and a read-only root file
# system is fine (docs/deploy.md).
WORKDIR /app
COPY . /app
RUN chmod 0755 /app/deploy/docker-entrypoint.sh \
    && python -m compileall -q /app \
    && DEBUG=false SECRET_KEY=build ALLOWED_HOSTS=x DATABASE_URL=postgres://build@localhost/build \
       python manage.py collectstatic --noinput \
    && DEBUG=false SECRET_KEY=build ALLOWED_HOSTS=x DATABASE_URL=postgres://build@localhost/build \
       python manage.py build_embedding_model \
    && groupadd --gid 10001 app \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin app

USER 10001:10001

# 8000: web (daphne); 8080: llm (llama_cpp.server).
EXPOSE 8000 8080

# Kubernetes uses its own probes; this one serves `docker run` and compose. It checks the
# role this container runs (see `healthcheck` in the entrypoint).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/app/deploy/docker-entrypoint.sh", "healthcheck"]

ENTRYPOINT ["/usr/bin/tini", "--", "/app/deploy/docker-entrypoint.sh"]
CMD ["web"]
