# syntax=docker/dockerfile:1
# The render worker: CUDA, PyTorch, ONNX Runtime and TensorRT, serving over ZeroMQ on port 5555.
# Build from the repository root: docker build -f docker/worker.Dockerfile -t carla-neural-worker .
ARG CUDA_VERSION=12.4.1
ARG UBUNTU=ubuntu22.04

# Stage 1: a virtual environment built where compilers and CUDA headers exist (pycuda compiles).
FROM nvidia/cuda:${CUDA_VERSION}-cudnn-devel-${UBUNTU} AS build
ARG TORCH_INDEX=https://download.pytorch.org/whl/cu124
ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-dev build-essential \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install --upgrade pip wheel && pip install torch --index-url ${TORCH_INDEX}
WORKDIR /src
COPY pyproject.toml README.md ./
COPY renderer renderer
COPY carla_neural carla_neural
COPY scenarios scenarios
COPY domain_adapt domain_adapt
# A worker host needs only renderer/ and its dependencies, plus the engines.
RUN pip install ".[onnx,openvino,tensorrt]"

# Stage 2: the runtime image, without compilers.
FROM nvidia/cuda:${CUDA_VERSION}-cudnn-runtime-${UBUNTU}
ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:$PATH
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 1000 worker
COPY --from=build /opt/venv /opt/venv
USER worker
WORKDIR /home/worker
EXPOSE 5555
# Inside a container the worker must listen on all interfaces to be reachable from the other
# services; --allow-remote says so explicitly. Publish the port on the host's loopback only.
CMD ["python", "-m", "renderer.worker", "--checkpoint", "bundled", "--engine", "torch", \
     "--bind", "tcp://0.0.0.0:5555", "--allow-remote"]
