#!/bin/sh
# Create the work pools (when missing) and register every deployment of prefect.yaml.
# Run from the repository root with PREFECT_API_URL pointing at the server:
#   PREFECT_API_URL=http://localhost:4200/api sh infra/prefect/deploy.sh
# POOL_TYPE=kubernetes creates the GPU pool with the job template of infra/k8s/gpu-base-job-template.json.
set -eu
POOL_TYPE="${POOL_TYPE:-process}"
: "${PREFECT_API_URL:?set PREFECT_API_URL to the Prefect server, e.g. http://localhost:4200/api}"

if ! prefect work-pool inspect drivefine-cpu >/dev/null 2>&1; then
  if [ "$POOL_TYPE" = kubernetes ]; then
    prefect work-pool create drivefine-cpu --type kubernetes --base-job-template infra/k8s/cpu-base-job-template.json
  else
    prefect work-pool create drivefine-cpu --type process
  fi
fi
if ! prefect work-pool inspect drivefine-gpu >/dev/null 2>&1; then
  if [ "$POOL_TYPE" = kubernetes ]; then
    prefect work-pool create drivefine-gpu --type kubernetes --base-job-template infra/k8s/gpu-base-job-template.json
  else
    prefect work-pool create drivefine-gpu --type process
  fi
fi
prefect --no-prompt deploy --all
