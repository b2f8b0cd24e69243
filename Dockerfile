# Ray cluster image for audiodistill: the same image for head and workers.
#   docker build -t audiodistill .
#   Use it as the image of a KubeRay RayCluster or `ray up` cluster, then
#   ray job submit --address http://HEAD:8265 -- audiodistill pseudo-label --config ...
# The CUDA base gives GPU workers their runtime; on CPU nodes the same image runs on the CPU.
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=0 \
    PATH=/opt/venv/bin:$PATH

RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      python3.11 python3.11-venv python3-pip espeak-ng libsndfile1 ffmpeg git \
 && rm -rf /var/lib/apt/lists/*

RUN python3.11 -m venv /opt/venv && pip install --no-cache-dir --upgrade pip

WORKDIR /app
COPY pyproject.toml README.md ./
COPY audiodistill ./audiodistill
COPY pipelines ./pipelines
COPY serve ./serve
COPY configs ./configs
RUN pip install --no-cache-dir '.[all]'

# Convert the bundled teacher to transformers format once, at build time, so GPU workers
# using the `hf` backend start without a conversion step.
RUN python -c "from audiodistill.teachers.convert import ensure_bundled_hf; ensure_bundled_hf()"

CMD ["bash"]
