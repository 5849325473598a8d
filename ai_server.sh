#!/usr/bin/env bash
# Thin wrapper keeping the original NoCodeTune interface; everything happens in
# `nocodetune server start` (see `nocodetune server --help`).
#
#   SERVER_TYPE  data_load_server | fine_tuning_server | model_release_server  (or data|jobs|model|api)
#   NOHUP        True → run in the background (logs in <workspace>/logs/<kind>/), False → foreground
#   JOB / MODEL  what a model_release_server serves (a job name, or a model; default: the embedded model)
#   HOST / PORT  where to listen (default 127.0.0.1 and a free port)
#   WORKSPACE    workspace folder (default: $NOCODETUNE_WORKSPACE, the current folder or a parent)
set -euo pipefail

case "${SERVER_TYPE:-}" in
  data_load_server | data) kind=data ;;
  fine_tuning_server | jobs) kind=jobs ;;
  model_release_server | model) kind=model ;;
  api) kind=api ;;
  *)
    echo "ai_server.sh: set SERVER_TYPE to data_load_server, fine_tuning_server or model_release_server (got '${SERVER_TYPE:-}')" >&2
    exit 2
    ;;
esac

args=(server start "$kind")
[[ -n "${JOB:-}" ]] && args+=(--job "$JOB")
[[ -n "${MODEL:-}" ]] && args+=(--model "$MODEL")
[[ -n "${HOST:-}" ]] && args+=(--host "$HOST")
[[ -n "${PORT:-}" ]] && args+=(--port "$PORT")
case "${NOHUP:-False}" in
  True | true | 1 | yes) args+=(--background) ;;
  False | false | 0 | no | "") ;;
  *) echo "ai_server.sh: NOHUP must be True or False (got '$NOHUP')" >&2; exit 2 ;;
esac

# Prefer the nocodetune on PATH; else the Python that has the package installed.
if command -v nocodetune >/dev/null 2>&1; then
  cli=(nocodetune)
else
  cli=("${PYTHON:-python3}" -m nocodetune)
fi
[[ -n "${WORKSPACE:-}" ]] && cli+=(--workspace "$WORKSPACE")
exec "${cli[@]}" "${args[@]}"
