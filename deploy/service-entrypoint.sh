#!/bin/sh
# Fetch the model MLREPO_MODEL names (a registry reference: model#production, model@v1.2.0...)
# from the DVC remote, then serve it. `mlrepo serve` resolves the reference to a commit and
# refuses any file whose md5 differs from that commit's dvc.lock: nothing unverified is loaded.
set -eu
if [ -n "${MLREPO_DVC_REMOTE:-}" ]; then
    dvc remote add --local --force --default deployed "$MLREPO_DVC_REMOTE"
fi
# Every registered version is a git tag; fetch only the model files of those revisions.
dvc fetch --all-tags models/model.joblib models/model.json models/model.onnx \
    || echo "dvc fetch failed: serving only if the files are already in the DVC cache" >&2
exec mlrepo serve --host 0.0.0.0 --port 8000 --model "$MLREPO_MODEL"
