# Textopia's HTTP service: the web page, the JSON API and the SageMaker inference contract.
#
#   docker build -t textopia .
#   docker run --rm -p 8080:8080 textopia                 # then open http://localhost:8080/
#   docker run --rm -p 8080:8080 -v $PWD/runs/vae:/models/vae -e TEXTOPIA_MODELS=/models/vae textopia
#
# As a SageMaker endpoint the image runs unchanged: SageMaker starts it as `docker run IMAGE serve`,
# probes GET /ping and sends POST /invocations on port 8080; a model.tar.gz holding a checkpoint
# directory is unpacked to /opt/ml/model, which the service loads beside the embedded default.
# Batch transform uses the same contract, with application/jsonlines bodies.
#
# The same image runs SageMaker's training and processing jobs (textopia.sagemaker):
#   docker run IMAGE train                       a training job (SageMaker's own call)
#   docker run IMAGE prepare SRC --out DIR ...   a processing job: any textopia command
# SageMaker's /opt/ml volumes are owned by root; build the image you push with
#   docker build --build-arg RUN_AS=root -t textopia .
# (README, "Deploy on AWS"). Run locally, the image keeps its unprivileged user.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TEXTOPIA_HOST=0.0.0.0 \
    TEXTOPIA_PORT=8080

WORKDIR /app

# The CPU build of torch first (small); for a GPU image start from a CUDA base image instead.
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch>=2.2"

COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install ".[serve,aws]"
# Training configs, for a job's "config" hyperparameter (e.g. "configs/gpt-small.toml").
COPY configs ./configs

# CLIP token counts need CLIP's merges file; the image has no network (HF_HUB_OFFLINE), so either
# add it here, e.g.
#   COPY bpe_simple_vocab_16e6.txt.gz /app/clip/
#   ENV TEXTOPIA_CLIP_BPE=/app/clip/bpe_simple_vocab_16e6.txt.gz
# or answers carry "clip_tokens": null.

ARG RUN_AS=textopia
RUN useradd --create-home --uid 1000 textopia
USER ${RUN_AS}

EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=60s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/ping', timeout=2)"

# serve (the default), train, or any textopia command: see src/textopia/sagemaker.py.
ENTRYPOINT ["python", "-m", "textopia.sagemaker"]
CMD ["serve"]
