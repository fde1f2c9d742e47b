#!/usr/bin/env bash
# The CUDA checks, in one short run on a machine with NVIDIA GPUs and internet access (PyPI and
# crates.io), from a clean clone:
#
#   bash scripts/gpu-check.sh            # writes gpu-check/ (logs and the benchmark table)
#
# 1. installs the full torch 2.13.0 wheel (CUDA libtorch and its NVIDIA libraries) into
#    .venv-torch-cuda and builds npe with `--features tch,cuda` (burn's CUDA backend downloads
#    LLVM once at build time: set NPE_GPU_BURN=0 to skip burn);
# 2. runs the backends' conformance suite on cuda:0 (`passes_the_core_conformance_suite_on_cuda`) and
#    the NCCL test (`nccl_joins_on_a_gpu_and_says_why_not_without_one`);
# 3. trains the quickstart pipeline on cuda:0 and checks it reaches the CPU run's accuracy band;
# 4. `npe bench train --device cuda:0` side by side with PyTorch on the same GPU (ResNet-32 + 1
#    PEM, batch 128), the table into gpu-check/bench.md.
# 5. with two GPUs or more: a two-GPU data-parallel quickstart (`--nproc-per-node 2 --device
#    cuda`, c10d's NCCL process group) that must train as one GPU does.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="$root/gpu-check"
mkdir -p "$out"
command -v nvidia-smi >/dev/null || { echo "error: no nvidia-smi: this script needs an NVIDIA GPU" >&2; exit 1; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpus.csv"
gpus=$(($(wc -l < "$out/gpus.csv") - 1))

export NPE_TORCH_VENV="$root/.venv-torch-cuda" NPE_TORCH_FULL=1
eval "$(scripts/libtorch.sh)"
"$NPE_TORCH_VENV/bin/python" -c "import torch; assert torch.cuda.is_available(), 'torch sees no GPU'; print(torch.__version__, torch.version.cuda)"

# The shim's NCCL code includes CUDA headers the torch wheel's NVIDIA packages lack (crt/, nv/):
# take them from the matching CUDA wheels unless a toolkit is installed.
if [ ! -d "${CUDA_HOME:-/usr/local/cuda}/include/crt" ]; then
  cuda_major=$("$NPE_TORCH_VENV/bin/python" -c "import torch; print(torch.version.cuda.split('.')[0])")
  "$NPE_TORCH_VENV/bin/pip" install -q "nvidia-cuda-crt==$cuda_major.*" "nvidia-cuda-cccl==$cuda_major.*" \
    || "$NPE_TORCH_VENV/bin/pip" install -q "nvidia-cuda-crt-cu$cuda_major" "nvidia-cuda-cccl-cu$cuda_major"
fi

features="tch,cuda"
[ "${NPE_GPU_BURN:-1}" = "1" ] && features="burn,$features"
echo "== build (--features $features)"
cargo build --release --no-default-features --features "$features" 2>&1 | tail -3

echo "== conformance on cuda:0"
cargo test --release --no-default-features --features "$features" --workspace --lib -- on_cuda nccl 2>&1 | tee "$out/conformance.log" | tail -5

echo "== quickstart on cuda:0"
npe=target/release/npe
for b in $(echo "$features" | tr ',' '\n' | grep -vx cuda); do
  $npe train pipelines/quickstart.yaml --backend "$b" --device cuda:0 --out "$out/quickstart-$b" --progress quiet \
    > "$out/quickstart-$b.log" 2>&1
  python3 - "$out/quickstart-$b/summary.json" "$b" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
acc = s["eval"]["accuracy"]["accuracy"]
npe, raw = acc["npe"]["mean_per_class"], acc["logits"]["mean_per_class"]
print(f"{sys.argv[2]}: {s['backend']}: raw {100*raw:.2f}, NPE-LA {100*npe:.2f}")
assert npe > raw + 0.03, "NPE-LA should beat the raw logits by > 3 points as on CPU"
EOF
done

echo "== bench on cuda:0 against PyTorch"
backends=$(echo "$features" | tr ',' '\n' | grep -vx cuda | paste -sd,)
$npe bench train --device cuda:0 --backends "$backends" --pems 1 --batch 128 --steps 50 --warmup 10 --rounds 3 \
  --pytorch "$NPE_TORCH_VENV/bin/python" | tee "$out/bench.md"

if [ "$gpus" -ge 2 ]; then
  echo "== two-GPU data-parallel run (NCCL)"
  $npe train pipelines/quickstart.yaml --backend tch --nproc-per-node 2 --device cuda --out "$out/ddp" --progress quiet \
    2>&1 | tee "$out/ddp.log" | tail -5
  python3 - "$out/ddp/summary.json" "$out/quickstart-tch/summary.json" <<'EOF'
import json, sys
two, one = (json.load(open(p))["eval"]["accuracy"]["accuracy"]["npe"]["mean_per_class"] for p in sys.argv[1:])
print(f"NPE-LA: 2 GPUs {100*two:.2f}, 1 GPU {100*one:.2f}")
assert abs(two - one) < 0.01, "two GPUs should train as one does (the same global batches)"
EOF
else
  echo "== two-GPU run skipped: $gpus GPU" | tee "$out/ddp.log"
fi
echo "gpu-check: done; see $out/"
