"""Lighter training loop for quick variant studies on the embedded scenes (no Lightning, one thread).

Trains one model for ``steps`` SGD steps (momentum 0.9, poly LR power 0.9, batch 16, 4,000 training scenes) and
prints validation mIoU (200 scenes) every ``eval_every`` steps. The results quoted in docs/segmentation.md
("lighter loop") came from it. One JSON argument sets the run, e.g.::

    python benchmarks/seg_variants.py '{"model": "tiny_ham", "variant": "context"}'
    python benchmarks/seg_variants.py '{"model": "tiny_fcn", "steps": 3000, "eval_every": 1000,
        "overrides": {"backbone_kwargs": {"widths": [16, 48, 128], "depth": [1, 1, 1]}}}'

Keys: model, steps (1000), lr (0.05), opt (sgd | adamw), canvas (64), variant (context), overrides (model
options), ds (dataset options), seed (0), eval_every (250).
"""

from __future__ import annotations

import json
import sys
import time

import torch
import torch.nn.functional as F

import hamburger as hb
from hamburger.recipes.seg.data import build_dataset
from hamburger.recipes.seg.metrics import build_confmat, scores_from_confmat
from hamburger.recipes.seg.transforms import SegEvalTransform, SegTrainTransform

NUM_CLASSES = 11
KEYS = {"model", "steps", "lr", "opt", "canvas", "variant", "overrides", "ds", "seed", "eval_every"}


def load_batch(dataset, indices, transform) -> tuple[torch.Tensor, torch.Tensor]:
    images, masks = [], []
    for i in indices:
        item = dataset[i]
        image, mask = transform(item["image"], item["mask"])
        images.append(image)
        masks.append(mask)
    return torch.stack(images), torch.stack(masks)


def evaluate(model, dataset, transform) -> float:
    model.eval()
    confmat = build_confmat(NUM_CLASSES)
    with torch.no_grad():
        for start in range(0, len(dataset), 50):
            x, y = load_batch(dataset, range(start, min(start + 50, len(dataset))), transform)
            confmat.update(model(x)["out"].argmax(1), y)
    model.train()
    return scores_from_confmat(confmat.compute())["mIoU"]


def main(argv: list[str]) -> None:
    torch.set_num_threads(1)
    args = json.loads(argv[0] if argv else "{}")
    if not isinstance(args, dict) or set(args) - KEYS:
        raise SystemExit(f"the argument must be a JSON object with keys from {sorted(KEYS)}, got {argv[0]!r}")
    steps, lr, canvas = args.get("steps", 1000), args.get("lr", 0.05), args.get("canvas", 64)
    seed = args.get("seed", 0)
    data = {"canvas_size": canvas, "variant": args.get("variant", "context"), "seed": 66, **args.get("ds", {})}
    torch.manual_seed(seed)
    train = build_dataset("fashion_scenes", split="train", num_scenes=4000, **data)
    val = build_dataset("fashion_scenes", split="val", num_scenes=200, **data)
    train_tf = SegTrainTransform(canvas, scale_range=(0.75, 1.25), photometric=False)
    eval_tf = SegEvalTransform()
    model = hb.create_model(args.get("model", "tiny_ham"), **args.get("overrides", {})).train()
    if args.get("opt", "sgd") == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-2)
    order = torch.Generator().manual_seed(seed)
    start = time.time()
    for step in range(1, steps + 1):
        for group in opt.param_groups:
            group["lr"] = lr * (1 - (step - 1) / steps) ** 0.9
        x, y = load_batch(train, torch.randint(0, len(train), (16,), generator=order).tolist(), train_tf)
        out = model(x)
        loss = F.cross_entropy(out["out"], y, ignore_index=255)
        if "aux" in out:
            loss = loss + 0.4 * F.cross_entropy(out["aux"], y, ignore_index=255)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % args.get("eval_every", 250) == 0:
            miou = evaluate(model, val, eval_tf)
            print(f"{json.dumps(args)} step {step} loss {loss.item():.3f} mIoU {miou:.4f} t {time.time() - start:.0f}s")


if __name__ == "__main__":
    main(sys.argv[1:])
