"""Train the small digits CNN on scikit-learn's bundled 8x8 digits and export ONNX + 4 TFLite variants.

Input: pixel / 16 (0..1), ONNX NCHW [1,1,8,8], TFLite NHWC [1,8,8,1]. Fixed seed, stratified 30% test split
shipped as digits-cnn/test.npz (x (N,8,8) float32 in 0..16, y (N,) int64).
"""
from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    CONVERTER_SETTINGS,
    MODELS_DIR,
    WORK_DIR,
    onnx_to_saved_model,
    saved_model_to_tflite,
    versions,
    write_onnx2tf_sample,
)

SEED = 20240611
OUT = MODELS_DIR / "digits-cnn"
WORK = WORK_DIR / "digits"
NAME = "digits-cnn"


class DigitsCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),                                  # 4x4
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),                                  # 2x2
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(128, 80), nn.ReLU(), nn.Linear(80, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


def load_split():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = d.images.astype(np.float32)          # (1797, 8, 8) in 0..16
    y = d.target.astype(np.int64)
    return train_test_split(x, y, test_size=0.3, stratify=y, random_state=SEED)


def train(xtr, ytr) -> nn.Module:
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    random.seed(SEED)
    torch.set_num_threads(2)
    model = DigitsCNN()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=80)
    xt = torch.from_numpy(xtr / 16.0).float().unsqueeze(1)
    yt = torch.from_numpy(ytr)
    g = torch.Generator().manual_seed(SEED)
    for epoch in range(80):
        model.train()
        perm = torch.randperm(len(xt), generator=g)
        for i in range(0, len(xt), 32):
            idx = perm[i:i + 32]
            xb = xt[idx]
            # light augmentation: 1-pixel shifts
            if epoch < 70:
                dx, dy = (torch.randint(-1, 2, (2,), generator=g)).tolist()
                xb = torch.roll(xb, shifts=(dy, dx), dims=(2, 3))
            loss = nn.functional.cross_entropy(model(xb), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    model.eval()
    return model


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    WORK.mkdir(parents=True, exist_ok=True)
    xtr, xte, ytr, yte = load_split()
    np.savez_compressed(OUT / "test.npz", x=xte.astype(np.float32), y=yte.astype(np.int64))
    (OUT / "labels.txt").write_text("".join(f"{i}\n" for i in range(10)))

    model = train(xtr, ytr)
    nparams = sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        pred = model(torch.from_numpy(xte / 16.0).float().unsqueeze(1)).argmax(1).numpy()
    acc = float((pred == yte).mean())
    print(f"digits-cnn: {nparams} params, torch test accuracy {acc:.4f}")

    onnx_path = OUT / f"{NAME}-fp32.onnx"
    torch.onnx.export(
        model, (torch.zeros(1, 1, 8, 8),), str(onnx_path), input_names=["input"], output_names=["logits"],
        opset_version=17, dynamo=False,
    )
    # onnx2tf does not need the image sample here (1 channel), but give it one anyway: no download ever.
    write_onnx2tf_sample(WORK)
    sm = onnx_to_saved_model(onnx_path, WORK / "saved_model", WORK)

    def representative():
        for img in xtr[:300]:
            yield [(img / 16.0).astype(np.float32).reshape(1, 8, 8, 1)]

    built = {}
    for prec in ("fp32", "fp16", "int8-dynamic", "int8-static"):
        path = OUT / f"{NAME}-{prec}.tflite"
        saved_model_to_tflite(sm, prec, path, representative if prec == "int8-static" else None)
        built[prec] = CONVERTER_SETTINGS[prec].format(n=300)
    tool = versions("torch", "onnx", "onnx2tf", "tensorflow-cpu")
    info = {
        "params": nparams,
        "torch_test_accuracy": acc,
        "seed": SEED,
        "onnx_built_with": f"torch {versions('torch').split(' ', 1)[1]} torch.onnx.export(opset_version=17, dynamo=False)",
        "tflite_built_with": {p: f"{tool}; onnx2tf -> SavedModel -> {s}; calibration: 300 training digits"
                              if p == "int8-static" else f"{tool}; onnx2tf -> SavedModel -> {s}"
                              for p, s in built.items()},
    }
    (WORK_DIR / "digits_info.json").write_text(json.dumps(info, indent=2))
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
