"""U-Net with channel-wise Monte-Carlo dropout whose masks are model inputs (docs/interfaces.md §1).

The encoder (and the decoder up to the first dropout site) runs once per image; the first mask
multiplication broadcasts the features to T samples, after which the rest runs on N*T images.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

INPUT_H, INPUT_W = 192, 256  # multiple of 32, the camera's 4:3
# Where the dropout sites are; each name lists block outputs that get a mask.
PLACEMENTS = {
    "bottleneck": ["bottleneck"],
    "bottleneck+decoder": ["bottleneck", "dec3", "dec2"],
    "last_block": ["dec1"],
    "head": ["dec0"],
}
ORDER = ["bottleneck", "dec3", "dec2", "dec1", "dec0"]


def block(cin, cout):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class MCUNet(nn.Module):
    def __init__(self, base: int = 16, placement: str = "bottleneck+decoder", p: float = 0.2, lcn: bool = False,
                 width: float = 1.0):
        super().__init__()
        b = base
        self.placement, self.p, self.lcn, self.width = placement, p, lcn, width
        self.temperature = 1.0  # fitted on val after training (export.py), divides the logits
        self.style_mix = 0.0  # MixStyle's probability per batch in training (train.py --mixstyle); off in the graph
        # `width` scales the blocks between the full-resolution ones (enc1 .. dec2). With the
        # dropout at dec1 or later they run once per frame, so capacity there costs little of T = 16.
        w = {c: int(round(c * b * width)) for c in (2, 4, 8)}
        self.enc0 = block(6 if lcn else 3, b)
        self.enc1, self.enc2, self.enc3 = block(b, w[2]), block(w[2], w[4]), block(w[4], w[8])
        self.bott = block(w[8], w[8])
        self.dec3 = block(2 * w[8], w[4])
        self.dec2 = block(2 * w[4], w[2])
        self.dec1 = block(2 * w[2], b)
        self.dec0 = block(2 * b, b)
        self.head = nn.Conv2d(b, 2, 1)
        self.channels = {"bottleneck": w[8], "dec3": w[4], "dec2": w[2], "dec1": b, "dec0": b}
        self.sites = [s for s in ORDER if s in PLACEMENTS[placement]]

    def site_channels(self):
        return [self.channels[s] for s in self.sites]

    def forward(self, image, *masks):
        """image [N,3,H,W]; masks[k] [N,T,C_k] -> probs [N,T,2,H,W]."""
        logits = self.logits(image, *masks)
        if self.temperature != 1.0:
            logits = logits / self.temperature
        probs = torch.softmax(logits, dim=2)
        return probs

    def logits(self, image, *masks):
        """image [N,3,H,W]; masks[k] [N,T,C_k] -> logits [N,T,2,H,W]."""
        m_of = dict(zip(self.sites, masks))
        n = image.shape[0]
        t = masks[0].shape[1]
        state = {"wide": False}

        def site(name, x):
            if name not in m_of:
                return x
            m = m_of[name][:, :, :, None, None]
            c, h, w = x.shape[1], x.shape[2], x.shape[3]
            if not state["wide"]:
                state["wide"] = True
                return (x.unsqueeze(1) * m).reshape(-1, c, h, w)
            return (x.reshape(n, t, c, h, w) * m).reshape(-1, c, h, w)

        def skip(x):
            if not state["wide"]:
                return x
            c, h, w = x.shape[1], x.shape[2], x.shape[3]
            return x.unsqueeze(1).expand(-1, t, -1, -1, -1).reshape(-1, c, h, w)

        def up(x):
            return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)

        def mix(x):
            return mix_style(x, self.style_mix) if self.training and self.style_mix else x

        if self.lcn:
            image = torch.cat([image, local_norm(image)], 1)
        e0 = mix(self.enc0(image))
        e1 = mix(self.enc1(F.max_pool2d(e0, 2)))
        e2 = mix(self.enc2(F.max_pool2d(e1, 2)))
        e3 = self.enc3(F.max_pool2d(e2, 2))
        x = site("bottleneck", self.bott(F.max_pool2d(e3, 2)))
        x = site("dec3", self.dec3(torch.cat([up(x), skip(e3)], 1)))
        x = site("dec2", self.dec2(torch.cat([up(x), skip(e2)], 1)))
        x = site("dec1", self.dec1(torch.cat([up(x), skip(e1)], 1)))
        x = site("dec0", self.dec0(torch.cat([up(x), skip(e0)], 1)))
        logits = self.head(x)
        return logits.reshape(n, t, 2, logits.shape[2], logits.shape[3])


def mix_style(x, p: float, alpha: float = 0.1, eps: float = 1e-6):
    """MixStyle (Zhou et al., ICLR 2021): with probability p, give each frame's early features a
    mix of its own channel statistics and another frame's of the batch, Beta(alpha, alpha)-weighted.
    Style lives in those statistics, content in the normalised map: the decoder learns to ignore
    the former. Training only; uses the global torch RNG (train.py seeds it)."""
    if len(x) < 2 or torch.rand(()) >= p:
        return x
    xf = x.float()
    mu = xf.mean((2, 3), keepdim=True).detach()
    sig = (xf.var((2, 3), keepdim=True) + eps).sqrt().detach()
    lam = torch.distributions.Beta(alpha, alpha).sample((len(x), 1, 1, 1))
    perm = torch.randperm(len(x))
    mu_mix = lam * mu + (1 - lam) * mu[perm]
    sig_mix = lam * sig + (1 - lam) * sig[perm]
    return ((xf - mu) / sig * sig_mix + mu_mix).to(x.dtype)


def local_norm(x, cell: int = 32):
    """Fixed local contrast normalisation: removes the lamp cone and vignetting gradients."""
    m = F.interpolate(F.avg_pool2d(x, cell), scale_factor=float(cell), mode="bilinear", align_corners=False)
    v = F.interpolate(F.avg_pool2d(x * x, cell), scale_factor=float(cell), mode="bilinear", align_corners=False)
    return (x - m) / torch.sqrt((v - m * m).clamp(min=0) + 0.05)


def random_masks(model: MCUNet, n: int, t: int, generator=None):
    """Channel dropout masks: Bernoulli(1-p), kept channels scaled by 1/(1-p)."""
    keep = 1.0 - model.p
    return [(torch.rand(n, t, c, generator=generator) < keep).float() / keep for c in model.site_channels()]


def ones_masks(model: MCUNet, n: int):
    return [torch.ones(n, 1, c) for c in model.site_channels()]


def flops(model: MCUNet, t: int = 16):
    """Multiply-accumulates per frame: (once part, per-sample part) by hooking convs."""
    counts = {"once": 0, "per": 0}
    hooks = []
    first = model.sites[0]
    order = ["enc0", "enc1", "enc2", "enc3", "bott", "dec3", "dec2", "dec1", "dec0", "head"]
    once_mods = order[: order.index("bott" if first == "bottleneck" else first) + 1]
    for name in order:
        mod = getattr(model, name)
        key = "once" if name in once_mods else "per"
        for conv in [m for m in mod.modules() if isinstance(m, nn.Conv2d)]:
            def hook(m, inp, out, key=key):
                counts[key] += out.numel() // out.shape[0] * m.in_channels * m.kernel_size[0] * m.kernel_size[1] // m.groups
            hooks.append(conv.register_forward_hook(hook))
    with torch.no_grad():
        model.eval()
        model(torch.zeros(1, 3, INPUT_H, INPUT_W), *ones_masks(model, 1))
    for h in hooks:
        h.remove()
    return counts["once"], counts["per"]


def widen(src: MCUNet, dst: MCUNet) -> MCUNet:
    """Copy `src` into the wider `dst` so that dst computes exactly what src does (Net2Net-style:
    src's channels first, the new channels' outgoing weights zero). Warm-starts a wider trunk
    from a trained narrow one; the new channels then learn from there."""
    cat_inputs = {"dec3": ("bott", "enc3"), "dec2": ("dec3", "enc2"), "dec1": ("dec2", "enc1")}
    blocks = ("enc0", "enc1", "enc2", "enc3", "bott", "dec3", "dec2", "dec1", "dec0")
    width_of = {name: getattr(dst, name)[3].out_channels for name in blocks}  # block(): conv, BN, ReLU, conv, ...
    old_of = {name: getattr(src, name)[3].out_channels for name in blocks}
    with torch.no_grad():
        for name in blocks:
            s_mods, d_mods = list(getattr(src, name)), list(getattr(dst, name))
            for i, (s, d) in enumerate(zip(s_mods, d_mods)):
                if isinstance(s, nn.Conv2d):
                    o = s.out_channels
                    if i == 0 and name in cat_inputs:  # [upsampled deeper map, skip]: both halves move
                        a, k = cat_inputs[name]
                        idx = list(range(old_of[a])) + [width_of[a] + j for j in range(old_of[k])]
                    else:
                        idx = list(range(s.in_channels))
                    keep = torch.zeros(d.in_channels, dtype=torch.bool)
                    keep[idx] = True
                    d.weight[:o, ~keep] = 0  # the new inputs do not reach the old outputs
                    d.weight[:o, idx] = s.weight
                elif isinstance(s, nn.BatchNorm2d):
                    c = s.num_features
                    for attr in ("weight", "bias", "running_mean", "running_var"):
                        getattr(d, attr)[:c] = getattr(s, attr)
                    d.running_var[c:] = s.running_var[0]  # the new channels: the base's (identity) form
        dst.head.weight.copy_(src.head.weight)
        dst.head.bias.copy_(src.head.bias)
    dst.temperature = src.temperature
    return dst
