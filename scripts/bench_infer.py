"""Python side of `npe bench predict`: batch inference of the benchmarked model, one JSON line.

Usage: python bench_infer.py pytorch|onnxruntime ONNX_FILE THREADS STEPS WARMUP BATCH DEPTH
  pytorch:     bench_pytorch.py's ResNet-N + 1 PEM in eval mode under torch.inference_mode,
               with NPE-LA's adjustment (logits − (h − mean h)); ONNX_FILE unused.
  onnxruntime: ONNX_FILE (npe's export of the same model) in ONNX Runtime on the CPU.
"""
import json, os, resource, sys, time

import numpy as np


def main():
    mode, onnx_file = sys.argv[1], sys.argv[2]
    threads, steps, warm, bs, depth = (int(a) for a in sys.argv[3:8])
    x = np.random.RandomState(0).randn(bs, 3, 32, 32).astype(np.float32)
    if mode == "pytorch":
        import torch
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from bench_pytorch import Net
        torch.set_num_threads(threads); torch.manual_seed(0)
        net = Net(depth, 10, 1).eval()
        xt = torch.from_numpy(x)

        def run():
            with torch.inference_mode():
                logits, hs = net(xt)
                h = hs[0]
                return (logits - (h - h.mean(1, keepdim=True))).numpy()
        describe = f"pytorch {torch.__version__} eval mode, inference_mode ({torch.get_num_threads()} threads)"
    else:
        import onnxruntime as ort
        opts = ort.SessionOptions(); opts.intra_op_num_threads = threads; opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(onnx_file, opts, providers=["CPUExecutionProvider"])

        def run():
            return sess.run(None, {"image": x})[0]
        describe = f"onnxruntime {ort.__version__} on npe's export ({threads} threads)"
    for step in range(warm + steps):
        if step == warm:
            t0 = time.perf_counter()
        run()
    dt = time.perf_counter() - t0
    print(json.dumps({"img_s": steps * bs / dt, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "describe": describe}))


if __name__ == "__main__":
    main()
