# The web app. Build from the repository root (experiments and drift reports come from it):
#   docker build -f deploy/app.Dockerfile -t mlrepo-app .
# It predicts only through the service at MLREPO_SERVICE_URL; it loads no model to predict.
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
ENV MLREPO_SERVICE_URL=http://service:8000
EXPOSE 8501
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=2).status != 200)"
CMD ["streamlit", "run", "src/mlrepo/app/main.py", "--server.address", "0.0.0.0", \
     "--server.port", "8501", "--server.headless", "true", "--browser.gatherUsageStats", "false", \
     "--server.fileWatcherType", "none", "--client.toolbarMode", "viewer"]
