#!/usr/bin/env python3
"""results/stare.md from the two STARE studies' tables (studies/stare.yaml at the reference's
600 iterations, studies/stare_2x.yaml at twice that): both tables as `npe study` wrote them,
then what is computed across them here: each output's rank at 1x and 2x the budget (by mIoU,
vessel Dice and AUC), the rank agreement (Kendall's tau), and NPE-LA against post-hoc LA with
the pixel counts, per seed (paired: the same seed's CE model for post-hoc NPE and the CE rows).

    python3 scripts/stare_report.py runs/studies/stare runs/studies/stare_2x > results/stare.md

Standard library only.
"""
import json
import platform
import statistics
import sys
from pathlib import Path


def load(folder):
    folder = Path(folder)
    rows = json.loads((folder / "results.json").read_text())
    md = (folder / "results.md").read_text()
    return {(r["row"], r["output"]): r for r in rows}, md


def mean_std(xs):
    if not xs:
        return "—"
    m = 100 * statistics.mean(xs)
    return f"{m:.2f} ± {100 * statistics.stdev(xs):.2f}" if len(xs) > 1 else f"{m:.2f}"


def metric(r, name):
    return r["mean_per_class"] if name == "mIoU" else r["vessel"][name.lower()]


def kendall_tau(a, b):
    """Kendall's tau-a between two score lists over the same items."""
    n, s = len(a), 0
    for i in range(n):
        for j in range(i + 1, n):
            x, y = a[i] - a[j], b[i] - b[j]
            s += (x * y > 0) - (x * y < 0)
    return 2 * s / (n * (n - 1)) if n > 1 else float("nan")


def cpu():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(one, two):
    r1, md1 = load(one)
    r2, md2 = load(two)
    keys = [k for k in r1 if k in r2]
    out = []
    p = out.append
    p("# STARE (18 of 20 images): CE, NPE-LA and post-hoc LA at 1× and 2× the reference budget\n")
    p("Real data: `../shared/data/stare.tar.gz`, 18 of the 20 labelled STARE images (im0235 and im0236 "
      "are missing), first observer (`ah`) labels; the first 10 images in file order train, the last 8 test. "
      "Evaluated inside the derived field of view (red channel > 45, eroded 3 px), at the training "
      "resolution (whole images resized to 304×352, labels nearest). fp32, tch backend, "
      f"{cpu()}, 2 threads.\n")
    p("Regenerate (about 25 min and 55 min on 2 cores):\n")
    p("```sh\nmkdir -p /tmp/stare && tar -xzf ../shared/data/stare.tar.gz -C /tmp/stare\n"
      "NPE_DATA__ROOT=/tmp/stare/stare npe study studies/stare.yaml\n"
      "NPE_DATA__ROOT=/tmp/stare/stare npe study studies/stare_2x.yaml\n"
      f"python3 scripts/stare_report.py {one} {two} > results/stare.md\n```\n")
    p("## How the budget was scaled down, and what doubling it changes\n")
    p("The reference recipes: the NPE paper fine-tunes for 600 iterations; mmsegmentation's STARE UNet "
      "trains from scratch for 40k iterations of 16 random 128×128 crops (4 GPUs × 4) and evaluates "
      "by sliding window at full resolution. Here the U-Net ([16, 32, 64] channels) trains from scratch "
      "for 600 iterations of 2 whole images at 304×352 (214k pixels an iteration, 0.82× mmseg's 262k), "
      "so 1.2 % of mmseg's pixel budget, at half its resolution: the full recipe is ~80× this on a CPU "
      "that trains 6–7 images/s. `studies/stare_2x.yaml` doubles the iterations (1200) with everything "
      "else equal but one kernel thread per run (two runs at once). Ranks below are over all 13 outputs "
      "both studies evaluate; outputs of one model that only shift the logits by a constant per class "
      "(logits, `posthoc`, `predicted`) have the same AUC, so their AUC ranks are ties broken arbitrarily.\n")
    for name in ["mIoU", "Dice", "AUC"]:
        a = [statistics.mean(metric(r1[k], name)) for k in keys]
        b = [statistics.mean(metric(r2[k], name)) for k in keys]
        order1 = sorted(range(len(keys)), key=lambda i: -a[i])
        order2 = sorted(range(len(keys)), key=lambda i: -b[i])
        rank1 = {i: order1.index(i) + 1 for i in range(len(keys))}
        rank2 = {i: order2.index(i) + 1 for i in range(len(keys))}
        label = "mIoU" if name == "mIoU" else f"vessel {name}"
        p(f"### {label}: Kendall's τ between the 1× and 2× rankings = {kendall_tau(a, b):.2f}\n")
        p("| run | output | 1× (600 it.) | rank | 2× (1200 it.) | rank |")
        p("|:--|:--|--:|--:|--:|--:|")
        for i in order1:
            k = keys[i]
            p(f"| {k[0]} | {k[1]} | {mean_std(metric(r1[k], name))} | {rank1[i]} | "
              f"{mean_std(metric(r2[k], name))} | {rank2[i]} |")
        p("")
    p("## NPE-LA against post-hoc LA with the pixel counts, per seed\n")
    p("Differences in points (NPE-LA minus post-hoc LA of the same seed's model), mean ± std over seeds. "
      "`npe_m1 / npe` is the paper's NPE-LA; `posthoc` adds log of the training pixel counts.\n")
    pairs = [(("npe_m1", "npe"), ("npe_m1", "posthoc"), "NPE-LA vs post-hoc LA, same NPE model"),
             (("npe_m1", "npe"), ("ce", "posthoc"), "NPE model's NPE-LA vs CE model + post-hoc LA"),
             (("npe_m1", "npe_auto"), ("ce", "posthoc"), "NPE-LA `scale: auto` vs CE + post-hoc LA"),
             (("posthoc_npe", "npe"), ("ce", "posthoc"), "post-hoc NPE vs post-hoc LA, same CE model")]
    agree = []
    for a, b, what in pairs:
        if all(k in r for k in (a, b) for r in (r1, r2)):
            d1, d2 = (statistics.mean(r[a]["vessel"]["iou"]) - statistics.mean(r[b]["vessel"]["iou"]) for r in (r1, r2))
            agree.append(f"{what}: {100 * d1:+.2f} at 1×, {100 * d2:+.2f} at 2× ({'same sign' if d1 * d2 > 0 else 'SIGN CHANGES'})")
    p("Vessel IoU difference of each comparison at both budgets: " + "; ".join(agree) + ".\n")
    p("| comparison | budget | Δ mIoU | Δ vessel IoU | Δ vessel Dice | Δ sensitivity | Δ specificity |")
    p("|:--|:--|--:|--:|--:|--:|--:|")
    for a, b, what in pairs:
        for tag, rows in [("1×", r1), ("2×", r2)]:
            if a not in rows or b not in rows:
                continue
            cells = []
            for name in ["mIoU", "iou", "dice", "sensitivity", "specificity"]:
                xa = rows[a]["mean_per_class"] if name == "mIoU" else rows[a]["vessel"][name]
                xb = rows[b]["mean_per_class"] if name == "mIoU" else rows[b]["vessel"][name]
                d = [x - y for x, y in zip(xa, xb)]
                cells.append(mean_std(d) if len(d) == len(xa) == len(xb) else "—")
            p(f"| {what} | {tag} | " + " | ".join(cells) + " |")
    p("")
    p("## The 1× study (studies/stare.yaml), as `npe study` wrote it\n")
    p(md1.split("\n", 1)[1].replace("\n## ", "\n### ").replace("\n### Prior over training", "\n#### Prior over training"))
    p("## The 2× study (studies/stare_2x.yaml), as `npe study` wrote it\n")
    p(md2.split("\n", 1)[1].replace("\n## ", "\n### ").replace("\n### Prior over training", "\n#### Prior over training"))
    print("\n".join(out))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
