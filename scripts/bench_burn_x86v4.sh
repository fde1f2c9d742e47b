#!/usr/bin/env bash
# burn-flex's `x86-v4` feature (AVX-512 GEMM kernels) against the default build, side by side:
# two npe binaries, built without and with `--features x86-v4`, alternate round by round on
# `npe bench train --backends burn` (ResNet-32 + 1 PEM, batch 128); prints a markdown table of
# medians. Usage: scripts/bench_burn_x86v4.sh BASE_NPE V4_NPE (env: ROUNDS=3, STEPS=20).
set -euo pipefail
base="$1" v4="$2"
rounds="${ROUNDS:-3}" steps="${STEPS:-20}"
declare -A ips
for round in $(seq 1 "$rounds"); do
  for which in base v4; do
    bin="$base"; [ "$which" = v4 ] && bin="$v4"
    v="$("$bin" bench train --backends burn --pems 1 --rounds 1 --steps "$steps" --warmup 5 --json 2>/dev/null \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["img_s_median"])')"
    ips[$which]="${ips[$which]:-} $v"
    echo "round $round, $which: $v img/s" >&2
  done
done
median() { python3 -c 'import statistics,sys; print(f"{statistics.median(map(float, sys.argv[1:])):.1f}")' $1; }
b="$(median "${ips[base]}")" x="$(median "${ips[v4]}")"
echo "| burn-flex build | img/s (median of $rounds) | × default |"
echo "|---|---:|---:|"
echo "| default (AVX2 kernels) | $b | 1.00 |"
echo "| \`--features x86-v4\` (AVX-512 kernels) | $x | $(python3 -c "print(f'{$x / $b:.2f}')") |"
echo
echo "ResNet-32 + 1 PEM, batch 128, $steps timed steps, 2 threads; CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
