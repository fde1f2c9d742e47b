#!/usr/bin/env bash
# The speed evidence of results/bench_speed.md, regenerated in one go (about 25 minutes on 2 cores):
# burn and tch against PyTorch on ResNet-32 + 1 PEM (training steps), the same step layer by
# layer (`npe bench ops`), and channels-last against the plain layout on every shipped conv model
# on tch, fp32 and bf16. Usage: scripts/bench_speed.sh PYTHON_WITH_TORCH [NPE] > results/bench_speed.md
# (PYTHON_WITH_TORCH: a Python with the full `pip install torch==2.13.0`).
set -euo pipefail
py="$1"
npe="${2:-./target/release/npe}"
rounds="${ROUNDS:-2}"
cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) ($(nproc) cores)"
echo "# Training speed: burn and tch against PyTorch, layer by layer, and memory layouts"
echo
echo "Regenerate: \`scripts/bench_speed.sh PYTHON_WITH_TORCH > results/bench_speed.md\`. Measured $(date -u +%F)"
echo "at commit $(git rev-parse --short HEAD) on: **$cpu**, nothing else running. Random inputs, float32"
echo "unless a row says bf16; every configuration in its own process, configurations alternating round by round."
echo
echo "## ResNet-32 + 1 PEM, batch 128: burn, tch and PyTorch"
echo
fence() { echo '```'; "$@"; echo '```'; }
fence "$npe" bench train --backends burn,tch --pems 1 --rounds "$rounds" --pytorch "$py"
echo
echo "## The same step, layer by layer (\`npe bench ops\`)"
echo
"$npe" bench ops --backends burn,tch --pytorch "$py"
echo
echo "## Channels-last on tch, every shipped conv model"
echo
echo "### ResNet-32 + 1 PEM (CIFAR, batch 128), with PyTorch's same configurations"
echo
fence "$npe" bench train --backends tch --pems 1 --precision fp32,bf16 --channels-last false,true --rounds "$rounds" --pytorch "$py"
for spec in "pipelines/fashion_mnist_lt.yaml 128 small CNN (Fashion-MNIST 28×28)" \
            "pipelines/seg_digits_lt.yaml 32 U-Net (seg-digits 64×64)" \
            "pipelines/imagenet_lt.yaml 16 ResNet-50 (224×224)"; do
  set -- $spec
  file="$1" batch="$2"; shift 2
  echo
  echo "### $* at batch $batch (\`$file\`)"
  echo
  steps=20 warm=5
  case "$file" in *imagenet*) steps=4 warm=2 ;; esac
  fence "$npe" bench train --backends tch --pipeline "$file" --batch "$batch" --steps "$steps" --warmup "$warm" \
    --precision fp32,bf16 --channels-last false,true --rounds "$rounds"
done
