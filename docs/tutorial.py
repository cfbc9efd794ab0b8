"""Tutorial: add a Hamburger to a small conv net, train it, save it and load it back.

Run it with ``python docs/tutorial.py`` (a few seconds on a CPU). Every step is plain PyTorch; the only
hamburger name used is :class:`hamburger.Hamburger`.
"""

# %% 1. A small conv net with a Hamburger in the middle.
#
# A Hamburger is a residual block, (B, C, H, W) -> (B, C, H, W), so it goes between any two layers with the
# same width. It treats the feature map as a C x n matrix (n = H * W positions) and adds back its low-rank
# part, recovered with K steps of NMF: every position sees a summary of the whole image (global context).
#
# version="v2+" computes out = ReLU(g_ham * branch + g_x * x) with the gate g_ham = 0 at initialisation, so
# the block starts as ReLU(x), which is x after a ReLU: inserting it does not change what the network computes.
# Training opens the gate.

import os
import tempfile

import torch
from torch import nn

import hamburger as hb

torch.manual_seed(0)  # a script may seed the global RNG; library code never does
CHANNELS = 16


def make_plain_net() -> nn.Sequential:
    """stem (conv + BatchNorm + ReLU) -> per-position logit -> mean over positions."""
    return nn.Sequential(
        nn.Conv2d(1, CHANNELS, 3, padding=1),
        nn.BatchNorm2d(CHANNELS),
        nn.ReLU(),
        nn.Conv2d(CHANNELS, 1, 1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(0),
    )


def insert_hamburger(plain: nn.Sequential) -> nn.Sequential:
    """The same layers (shared, not copied) with a Hamburger after the stem's ReLU, at index 3."""
    block = hb.Hamburger(CHANNELS, ham="nmf", rank=4, steps=4, eval_steps=4, version="v2+")
    return nn.Sequential(*plain[:3], block, *plain[3:])


# %% 2. The output is unchanged at initialisation.
#
# Insert the block into a net and compare with the net without it: in eval mode the outputs are bit-identical,
# because the zero gate removes the (random) ham branch.

plain = make_plain_net().eval()
net = insert_hamburger(plain).eval()
probe = torch.randn(4, 1, 23, 19)  # any size: the block has no stride
unchanged_at_init = torch.equal(net(probe), plain(probe))
assert unchanged_at_init, "a v2+ Hamburger with its zero gate must not change the output"
print("output unchanged by the inserted Hamburger at init:", unchanged_at_init)

# %% 3. Synthetic data where a global statistic decides the label.
#
# Each image is noise plus a faint offset; the label is whether the offset is positive. No single pixel tells,
# only the mean over the whole image does.


def batch(size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    labels = torch.randint(0, 2, (size,), generator=generator)
    offset = (labels.float() * 2 - 1) * 0.3
    images = torch.randn(size, 1, 16, 16, generator=generator) + offset.view(-1, 1, 1, 1)
    return images, labels.float()


# %% 4. Train ~20 steps and watch the loss go down.
#
# The gates g_ham and g_x are scalars that weight decay must not pull to zero; the block lists them in
# no_weight_decay() (the timm contract), which we use to build two parameter groups.

no_decay = {f"3.{name}" for name in net[3].no_weight_decay()}
params = dict(net.named_parameters())
optimizer = torch.optim.AdamW(
    [
        {"params": [p for n, p in params.items() if n not in no_decay], "weight_decay": 1e-4},
        {"params": [p for n, p in params.items() if n in no_decay], "weight_decay": 0.0},
    ],
    lr=1e-2,
)
data = torch.Generator().manual_seed(0)
losses: list[float] = []
net.train()
for step in range(20):
    images, labels = batch(32, data)
    loss = nn.functional.binary_cross_entropy_with_logits(net(images), labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
    if step % 5 == 0 or step == 19:
        print(f"step {step:2d}  loss {loss.item():.4f}  gate g_ham {net[3].coef_ham.item():+.4f}")

first_loss = sum(losses[:3]) / 3  # averages of three steps: one step's loss is noisy
last_loss = sum(losses[-3:]) / 3
print(f"loss: first steps {first_loss:.4f} -> last steps {last_loss:.4f}")

# %% 5. Save and load back.
#
# Save the state_dict (tensors only) and read it with weights_only=True, which never runs code from the file.
# The block's NMF dictionary in eval mode is fixed (no RNG), so the loaded copy gives identical outputs.

net.eval()
with tempfile.TemporaryDirectory() as folder:
    path = os.path.join(folder, "net.pt")
    torch.save(net.state_dict(), path)
    loaded = insert_hamburger(make_plain_net())
    loaded.load_state_dict(torch.load(path, weights_only=True))
    loaded.eval()
    reloaded_equal = torch.equal(loaded(probe), net(probe))
assert reloaded_equal
print("loaded copy gives identical outputs:", reloaded_equal)
