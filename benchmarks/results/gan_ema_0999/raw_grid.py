import sys, torch
from hamburger.recipes.gan.generate import build_gan, read_checkpoint  # noqa
from hamburger.recipes.gan.grid import *  # noqa
import hamburger.recipes.gan.grid as gridmod
ck = read_checkpoint(sys.argv[1])
hp = ck["hyper_parameters"]
for prefix in ("generator.", "generator_ema."):
    g, _ = build_gan(hp["model"], hp.get("model_kwargs"))
    g.load_state_dict({k[len(prefix):]: v for k, v in ck["state_dict"].items() if k.startswith(prefix)})
    g.eval()
    torch.manual_seed(0)
    z = torch.randn(8, g.z_dim).repeat(10, 1)
    y = torch.arange(10).repeat_interleave(8)
    with torch.no_grad():
        x = g(z, y)
    from torchvision.utils import save_image
    save_image((x + 1) / 2, f"{sys.argv[2]}_{prefix[:-1]}.png", nrow=8, padding=2)
    print(prefix, x.mean().item(), x.std().item(), "std over classes", x.view(10, 8, -1).std(0).mean().item())
