#!/usr/bin/env bash
# Data-parallel throughput on this machine, side by side: one worker with every core against
# N workers (`npe train --nproc-per-node N`) sharing them, ResNet-32 + 1 PEM at global batch 128
# on synthetic 32×32 RGB images, configurations alternating round by round; prints a markdown
# table of medians. Usage: scripts/bench_ddp.sh [N=2] (env: ROUNDS=3, STEPS=40, NPE=path).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
workers="${1:-2}"
rounds="${ROUNDS:-3}"
steps="${STEPS:-40}"
npe="${NPE:-./target/release/npe}"
cores="$(nproc)"
sets=(
  --set data.source=synthetic
  --set 'data.synthetic={classes: 10, size: 32, channels: 3, per_class: 2000, test_per_class: 20, noise: 1.0}'
  --set train.epochs=1 --set "train.max_steps_per_epoch=$steps" --set train.batch_size=128
  --set train.schedule.kind=constant --set 'train.schedule.milestones=[]' --set train.schedule.warmup_epochs=0
  --set eval.prior_train_samples=500 --set train.checkpoint.keep_last=1
)
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
declare -A ips
for round in $(seq 1 "$rounds"); do
  for n in 1 "$workers"; do
    out="$tmp/r${round}_n$n"
    if [ "$n" = 1 ]; then
      args=(--set "train.threads=$cores")
    else
      args=(--nproc-per-node "$n")
    fi
    "$npe" train pipelines/cifar10_lt.yaml --backend tch --progress quiet "${sets[@]}" "${args[@]}" --out "$out" \
      >"$tmp/log" 2>&1 || { cat "$tmp/log" >&2; exit 1; }
    v="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["images_per_second"])' "$out/summary.json")"
    ips[$n]="${ips[$n]:-} $v"
    echo "round $round, $n worker(s): $v img/s" >&2
  done
done
median() { python3 -c 'import statistics,sys; print(f"{statistics.median(map(float, sys.argv[1:])):.1f}")' $1; }
one="$(median "${ips[1]}")"
many="$(median "${ips[$workers]}")"
echo "| workers × threads | img/s (median of $rounds) | × one worker |"
echo "|---|---:|---:|"
echo "| 1 × $cores | $one | 1.00 |"
echo "| $workers × $(( cores / workers > 0 ? cores / workers : 1 )) | $many | $(python3 -c "print(f'{$many / $one:.2f}')") |"
echo
echo "ResNet-32 + 1 PEM, global batch 128, $steps steps, synthetic 32×32 RGB data, Gloo on $(uname -m), $cores cores; \`scripts/bench_ddp.sh $workers\`"
