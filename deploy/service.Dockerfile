# The prediction service. Build from the repository root (the registry needs its git tags):
#   docker build -f deploy/service.Dockerfile -t mlrepo-service .
# At start the entrypoint fetches the model files of MLREPO_MODEL from the DVC remote and
# `mlrepo serve` checks each against the md5 its commit's dvc.lock records before loading it.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN apt-get update && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 10001 mlrepo
WORKDIR /srv/mlrepo
COPY requirements.txt ./
RUN python -m pip install -r requirements.txt
COPY --chown=mlrepo:mlrepo . .
RUN python -m pip install --no-deps --no-build-isolation -e . \
    && git config --system --add safe.directory /srv/mlrepo

USER mlrepo
ENV MLREPO_MODEL=model#production \
    MLREPO_LOG_LEVEL=info
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2).status != 200)"
ENTRYPOINT ["deploy/service-entrypoint.sh"]
