#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need (Graphviz and
# Fashion-MNIST from Debian, libtorch 2.13.0 from PyPI), then builds once and runs every test of
# both backends. CI runs exactly this (.ci/run).
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

eval "$(scripts/libtorch.sh)"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
cargo test --release --features tch --workspace "$@"
