#!/usr/bin/env python3
"""Check an ONNX file npe exported against `npe predict` (tests/export.rs runs this).

usage: onnx_check.py MODEL.onnx PREDICTIONS.jsonl      (classification: npe predict --top-k C)
       onnx_check.py MODEL.onnx --maps DIR IMAGE...     (segmentation: npe predict's label maps)

Runs onnx.checker.check_model, then ONNX Runtime on each image preprocessed as the model's
metadata says (pixel / 255, (x - mean) / std; the images must already be the model's input size),
and prints JSON: per output, the largest absolute difference of the softmax probabilities to npe's
(classification) and whether every argmax is equal.
"""
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort
from PIL import Image


def load(path, meta):
    c = int(meta["npe.channels"])
    img = Image.open(path).convert("L" if c == 1 else "RGB")
    x = np.asarray(img, dtype=np.float32) / 255.0
    x = x[:, :, None] if c == 1 else x
    mean = np.array(json.loads(meta["npe.mean"]), dtype=np.float32)
    std = np.array(json.loads(meta["npe.std"]), dtype=np.float32)
    return ((x - mean) / std).transpose(2, 0, 1)


def softmax(z, axis):
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def main():
    model_path = sys.argv[1]
    model = onnx.load(model_path)
    onnx.checker.check_model(model, full_check=True)
    meta = {p.key: p.value for p in model.metadata_props}
    outputs = json.loads(meta["npe.outputs"])
    sess = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    report = {"outputs": {}}
    if sys.argv[2] == "--maps":
        maps, files = sys.argv[3], sys.argv[4:]
        x = np.stack([load(f, meta) for f in files])
        got = dict(zip(outputs, sess.run(outputs, {"image": x})))
        for o in outputs:
            same = True
            for i, f in enumerate(files):
                stem = f.rsplit("/", 1)[-1].rsplit(".", 1)[0]
                npe_map = np.asarray(Image.open(f"{maps}/{stem}.{o}.png"))
                same &= bool((got[o][i].argmax(0) == npe_map).all())
            report["outputs"][o] = {"argmax_equal": same}
    else:
        lines = [json.loads(l) for l in open(sys.argv[2])]
        x = np.stack([load(l["file"], meta) for l in lines])
        got = dict(zip(outputs, sess.run(outputs, {"image": x})))
        for o in outputs:
            p = softmax(got[o], 1)
            ref = np.zeros_like(p)
            for i, l in enumerate(lines):
                for e in l["outputs"][o]:
                    ref[i, e["index"]] = e["probability"]
            report["outputs"][o] = {
                "max_abs_diff": float(np.abs(p - ref).max()),
                "argmax_equal": bool((p.argmax(1) == ref.argmax(1)).all()),
            }
    report["images"] = len(x)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
