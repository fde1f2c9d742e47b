"""PyTorch side of `npe bench ops`: the same layer cases, timed the same way.

Each case is a forward (`*_fwd`) or the backward part of forward + backward minus the forward
(`conv_bwd_x`: the input's gradient only, `conv_bwd_w`: the weights' only, `bn_bwd` and
`relu_add_bwd`: the input's, with batch norm's affine gradients), the loss being the output's sum.
Median of REPS timings after two untimed calls. Prints the times (ms per call) as one JSON list.

Usage: python bench_ops_pytorch.py THREADS REPS CASES_JSON
"""
import json, sys, time
import torch, torch.nn.functional as F


def median_ms(reps, f):
    f(); f()
    t = []
    for _ in range(max(reps, 1)):
        s = time.perf_counter(); f(); t.append((time.perf_counter() - s) * 1e3)
    return sorted(t)[len(t) // 2]


def time_case(c, reps):
    g = torch.Generator().manual_seed(7)
    n, cin, h, w = c["input"]
    x0 = torch.randn(n, cin, h, w, generator=g)
    conv = c["op"].startswith("conv")
    w0 = torch.randn(*( [c["cout"], cin, 3, 3] if conv else [cin]), generator=g) * 0.1
    b0 = torch.randn(c["cout"] if conv else cin, generator=g) * 0.1
    rm, rv = torch.zeros(cin), torch.ones(cin)
    part = c["op"].rsplit("_", 1)[1]
    grad_x, grad_w = {"x": (True, False), "w": (False, True)}.get(part, (True, not c["op"].startswith("relu")))

    def run(backward):
        x = x0.detach().requires_grad_(grad_x)
        wt, bt = w0.detach().requires_grad_(grad_w), b0.detach().requires_grad_(grad_w)
        if conv:
            y = F.conv2d(x, wt, None, c["stride"], 1)
        elif c["op"].startswith("bn"):
            y = F.batch_norm(x, rm, rv, wt, bt, True, 0.1, 1e-5)
        else:
            y = F.relu(F.relu(x) + x)
        if backward:
            y.sum().backward()

    fwd = median_ms(reps, lambda: run(False))
    if c["op"].endswith("fwd"):
        return fwd
    return max(median_ms(reps, lambda: run(True)) - fwd, 0.0)


def main():
    threads, reps, cases = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
    torch.set_num_threads(threads)
    print(json.dumps([time_case(c, reps) for c in cases]))


if __name__ == "__main__":
    main()
