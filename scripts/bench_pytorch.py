"""PyTorch side of `npe bench train`: the same model and batch as npe's benchmark.

CIFAR ResNet-N (option-A shortcuts) + a linear head + M linear PEMs (N(0, 0.001^2) init),
SGD momentum 0.9, weight decay 2e-4 (not on PEMs), CE + mean one-way logistic loss, one fixed
random batch. Prints one JSON line like npe's bench children.

Usage: python bench_pytorch.py THREADS STEPS WARMUP BATCH DEPTH PEMS [DEVICE [PRECISION [CHANNELS_LAST]]]
  DEVICE cpu | cuda:N; PRECISION fp32 | bf16 | fp16 (autocast); CHANNELS_LAST 0 | 1
Needs `pip install torch==2.13.0` (the full wheel: the minimal libtorch install cannot import torch).
"""
import json, sys, time, resource
import torch, torch.nn as nn, torch.nn.functional as F


class Block(nn.Module):
    def __init__(s, cin, cout, stride):
        super().__init__()
        s.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False); s.bn1 = nn.BatchNorm2d(cout)
        s.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False); s.bn2 = nn.BatchNorm2d(cout)
        s.down = stride != 1 or cin != cout; s.pad = (cout - cin) // 2

    def forward(s, x):
        o = F.relu(s.bn1(s.conv1(x))); o = s.bn2(s.conv2(o))
        sc = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, s.pad, s.pad)) if s.down else x
        return F.relu(o + sc)


class Net(nn.Module):
    def __init__(s, depth, classes, pems):
        super().__init__()
        n = (depth - 2) // 6
        s.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False); s.bn1 = nn.BatchNorm2d(16)
        layers, cin = [], 16
        for planes, stride in [(16, 1), (32, 2), (64, 2)]:
            for b in range(n):
                layers.append(Block(cin, planes, stride if b == 0 else 1)); cin = planes
        s.layers = nn.Sequential(*layers)
        s.fc = nn.Linear(64, classes)
        s.pems = nn.ModuleList([nn.Linear(64, classes) for _ in range(pems)])
        for p in s.pems:
            nn.init.normal_(p.weight, std=1e-3); nn.init.zeros_(p.bias)

    def forward(s, x):
        h = s.layers(F.relu(s.bn1(s.conv1(x))))
        f = torch.flatten(F.adaptive_avg_pool2d(h, 1), 1)
        return s.fc(f), [p(f) for p in s.pems]


def main():
    threads, steps, warm, bs, depth, pems = (int(a) for a in sys.argv[1:7])
    device = torch.device(sys.argv[7] if len(sys.argv) > 7 else "cpu")
    precision = sys.argv[8] if len(sys.argv) > 8 else "fp32"
    channels_last = len(sys.argv) > 9 and sys.argv[9] == "1"
    amp = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    torch.set_num_threads(threads); torch.manual_seed(0)
    net = Net(depth, 10, pems).to(device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    pem_params = {id(p) for m in net.pems for p in m.parameters()}
    decayed = [p for p in net.parameters() if id(p) not in pem_params]
    groups = [{"params": decayed, "weight_decay": 2e-4}]
    if pems:
        groups.append({"params": [p for m in net.pems for p in m.parameters()], "weight_decay": 0.0})
    opt = torch.optim.SGD(groups, lr=0.1, momentum=0.9)
    x = torch.randn(bs, 3, 32, 32, device=device); y = torch.arange(bs, device=device) % 10
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    net.train()
    for step in range(warm + steps):
        if step == warm:
            sync(); t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            logits, hs = net(x)
        loss = F.cross_entropy(logits.float(), y)
        if hs:
            loss = loss + sum(F.softplus(h.float().gather(1, y[:, None])).mean() for h in hs) / len(hs)
        opt.zero_grad(); loss.backward(); opt.step()
    sync(); dt = time.perf_counter() - t0
    print(json.dumps({"img_s": steps * bs / dt, "step_s": dt / steps, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "describe": f"pytorch {torch.__version__} ({device}, {torch.get_num_threads()} threads, {precision}{' channels-last' if channels_last else ''})", "loss": float(loss)}))


if __name__ == "__main__":
    main()
