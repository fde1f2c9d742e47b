#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need (Graphviz and
# Fashion-MNIST from Debian, libtorch 2.13.0, TensorBoard and ONNX Runtime from PyPI), then builds once and
# runs every test of both backends. CI runs exactly this (.ci/run).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
need_apt=()
command -v dot >/dev/null 2>&1 || need_apt+=(graphviz)
[ -d /usr/share/datasets/fashion-mnist ] || need_apt+=(dataset-fashion-mnist)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]} (apt)"
  sudo_if_needed apt-get update -qq
  DEBIAN_FRONTEND=noninteractive sudo_if_needed apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# Syntax of every script (scripts/gpu-check.sh itself only runs on a machine with NVIDIA GPUs).
for script in scripts/*.sh .ci/run; do bash -n "$script"; done
eval "$(scripts/libtorch.sh)"
# tests/tensorboard.rs reads npe's event files back with TensorBoard itself (pip, ~20 s once).
export TENSORBOARD_PYTHON="${NPE_TORCH_VENV:-$root/.venv-torch}/bin/python"
"$TENSORBOARD_PYTHON" -c "import tensorboard" 2>/dev/null || "$TENSORBOARD_PYTHON" -m pip install -q tensorboard >&2
# tests/export.rs runs npe's ONNX exports in ONNX Runtime and onnx's checker (pip, once).
"$TENSORBOARD_PYTHON" -c "import onnxruntime, onnx, PIL" 2>/dev/null || "$TENSORBOARD_PYTHON" -m pip install -q onnxruntime onnx pillow >&2
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
cargo test --release --features tch --workspace "$@"

# The GPU code paths must keep compiling although no GPU (and no network) is here: type-check
# them. burn's cuda backend builds LLVM's NVPTX target through tracel-llvm-bundler, which
# downloads LLVM at build time; DOCS_RS=1 makes that build script skip the download, which is
# enough for a type check (a real CUDA build needs the network or a populated LLVM cache).
echo "type-checking the cuda and wgpu features"
DOCS_RS=1 cargo check --release --features tch,cuda,wgpu --workspace
