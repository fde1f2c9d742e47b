#!/usr/bin/env bash
# Install libtorch 2.13.0 (what tch 0.26 binds) from PyPI into .venv-torch, once, and print the
# environment to build and run npe's tch backend:
#
#   eval "$(scripts/libtorch.sh)"
#   cargo build --release --features tch
#
# Only the package registries are used (PyPI): the minimal CPU set is the torch wheel plus the two
# CUDA runtime wheels its libraries link against (~1.3 GB, ~30 s). On a machine with a GPU,
# `NPE_TORCH_FULL=1 scripts/libtorch.sh` installs the full `torch==2.13.0` with its CUDA libraries.
set -euo pipefail
TORCH_VERSION=2.13.0
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${NPE_TORCH_VENV:-$root/.venv-torch}"
py="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
  echo "creating $venv" >&2
  "$py" -m venv "$venv" >&2
fi
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
have="$("$venv/bin/python" -m pip show torch 2>/dev/null | sed -n 's/^Version: //p' || true)"
if [ "$have" != "$TORCH_VERSION" ] || [ ! -f "$site/torch/lib/libtorch_cpu.so" ]; then
  echo "installing torch $TORCH_VERSION into $venv (PyPI)" >&2
  if [ "${NPE_TORCH_FULL:-0}" = "1" ]; then
    "$venv/bin/python" -m pip install -q "torch==$TORCH_VERSION" >&2
  else
    "$venv/bin/python" -m pip install -q --no-deps "torch==$TORCH_VERSION" \
      nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85 >&2
  fi
fi
[ -f "$site/torch/lib/libtorch_cpu.so" ] || { echo "error: libtorch not found under $site/torch" >&2; exit 1; }

libs="$site/torch/lib"
for d in "$site"/nvidia/*/lib; do
  [ -d "$d" ] && libs="$libs:$d"
done
echo "export LIBTORCH=\"$site/torch\""
echo "export LIBTORCH_CXX11_ABI=1"
echo "export LD_LIBRARY_PATH=\"$libs\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}\""
