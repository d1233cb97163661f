# Textopia's HTTP service: the web page, the JSON API and the SageMaker inference contract.
#
#   docker build -t textopia .
#   docker run --rm -p 8080:8080 textopia                 # then open http://localhost:8080/
#   docker run --rm -p 8080:8080 -v $PWD/runs/vae:/models/vae -e TEXTOPIA_MODELS=/models/vae textopia
#
# As a SageMaker endpoint the image runs unchanged: SageMaker starts it as `docker run IMAGE serve`,
# probes GET /ping and sends POST /invocations on port 8080; a model.tar.gz holding a checkpoint
# directory is unpacked to /opt/ml/model, which the service loads beside the embedded default.
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
RUN pip install ".[serve]"

# CLIP token counts need CLIP's merges file; the image has no network (HF_HUB_OFFLINE), so either
# add it here, e.g.
#   COPY bpe_simple_vocab_16e6.txt.gz /app/clip/
#   ENV TEXTOPIA_CLIP_BPE=/app/clip/bpe_simple_vocab_16e6.txt.gz
# or answers carry "clip_tokens": null.

RUN useradd --create-home --uid 1000 textopia
USER textopia

EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=60s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/ping', timeout=2)"

ENTRYPOINT ["python", "-m", "textopia.serving"]
CMD ["serve"]
