"""Image-to-image GANs: CycleGAN for unpaired translation between two classes (Zhu et al. 2017,
"Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial Networks") and a

Two domains are two classes of the data (`domain_a`, `domain_b`); the trainer's
mixed-class batches are split by label and the other classes ignored. Generators G_AB, G_BA are
ResNet generators (c7s1-w, stride-2 downsampling, residual blocks, transposed-conv upsampling,
c7s1-C, instance norm, as in the paper's appendix) scaled to 28 x 28; discriminators D_A, D_B are
PatchGANs scaled from 70 x 70 on 256 px to 18 x 18 on 28 px (a 7 x 7 map of patch logits).
Losses: least-squares GAN (Mao et al. 2017), cycle consistency lambda_cyc |G_BA(G_AB(a)) - a|_1
+ lambda_cyc |G_AB(G_BA(b)) - b|_1, and identity lambda_id lambda_cyc (|G_BA(a) - a|_1 + |G_AB(b) - b|_1);
D's loss is halved, one Adam(2e-4, (0.5, 0.999)) for both generators and one for both
discriminators, the rate decaying linearly to 0 over the last half of training. Not here: the
paper's history buffer of 50 past fakes for D.
"""

from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn

from .. import data as D
from ..hparams import hp
from .base import EMA
from .translator import PatchDiscriminator, ResBlock, Translator, batched, gan_loss, scalar_zero


@dataclass
class CycleGANConfig:
    # The two classes. These defaults are Fashion-MNIST's sneaker and ankle boot (same pose and outline
    # minus the shaft); `data.CYCLEGAN_PAIRS` holds each dataset's pair (`data.dataset_hparams`).
    domain_a: int = hp(7, minimum=0, doc="class index of domain A")
    domain_b: int = hp(9, minimum=0, doc="class index of domain B")
    width: int = hp(32, minimum=1)  # generator channels at full resolution (x2 per downsampling)
    n_down: int = hp(2, minimum=0)  # stride-2 downsamplings before the residual blocks (2: blocks at 7 x 7)
    res_blocks: int = hp(6, minimum=0)
    width_d: int = hp(32, minimum=1)  # discriminator channels after its first conv
    lambda_cyc: float = hp(10.0, minimum=0)
    lambda_id: float = hp(0.5, minimum=0)  # identity weight, as a fraction of lambda_cyc; 0 skips the identity pass
    lr: float = hp(2e-4, exclusive_minimum=0)
    beta1: float = hp(0.5, minimum=0, maximum=1)
    beta2: float = hp(0.999, minimum=0, maximum=1)
    # fraction of training after which the rate falls linearly to 0; 1 = constant
    decay_from: float = hp(0.5, minimum=0, maximum=1)
    # translations for evaluation come from an EMA of the generators; 0 = raw
    ema_decay: float = hp(0.999, minimum=0, maximum=1)

    def __post_init__(self):
        if self.domain_a == self.domain_b:
            raise ValueError(f"domain_a and domain_b are both {self.domain_a}: pick two different classes")
        if not 0 <= self.decay_from <= 1:
            raise ValueError(f"decay_from ({self.decay_from}) must lie in [0, 1]")



class ResnetGenerator(nn.Module):
    """CycleGAN's generator: (B, C, H, W) in [-1, 1] -> (B, C, H, W) in [-1, 1]. H, W divisible by 2^n_down."""

    def __init__(self, c: int, width: int, n_down: int, res_blocks: int):
        super().__init__()
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(c, width, 7), nn.InstanceNorm2d(width), nn.ReLU(True)]
        ch = width
        for _ in range(n_down):                                               # (B, 2ch, H/2, W/2)
            layers += [nn.Conv2d(ch, 2 * ch, 3, 2, 1), nn.InstanceNorm2d(2 * ch), nn.ReLU(True)]
            ch *= 2
        layers += [ResBlock(ch) for _ in range(res_blocks)]
        for _ in range(n_down):                                               # (B, ch/2, 2H, 2W)
            layers += [nn.ConvTranspose2d(ch, ch // 2, 3, 2, 1, output_padding=1),
                       nn.InstanceNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, c, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)



class CycleGAN(Translator):
    """CycleGAN between classes cfg.domain_a and cfg.domain_b. Args: cfg (CycleGANConfig), shape (C, H, W)
    with H and W divisible by 2^n_down."""

    translator = "unpaired"   # translate_ab and translate_ba between classes domain_a and domain_b

    def __init__(self, cfg: CycleGANConfig, shape):
        super().__init__(cfg, shape)
        c = shape[0]
        self.G_AB = ResnetGenerator(c, cfg.width, cfg.n_down, cfg.res_blocks)
        self.G_BA = ResnetGenerator(c, cfg.width, cfg.n_down, cfg.res_blocks)
        self.D_A = PatchDiscriminator(c, cfg.width_d)
        self.D_B = PatchDiscriminator(c, cfg.width_d)
        for m in self.modules():   # N(0, 0.02), as in the authors' code
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                nn.init.zeros_(m.bias)
        self.ema = nn.ModuleList([EMA(self.G_AB, cfg.ema_decay), EMA(self.G_BA, cfg.ema_decay)]) \
            if cfg.ema_decay > 0 else None

    @property
    def train_classes(self) -> tuple[int, int]:
        """The classes training uses (train.train drops the others from the split)."""
        return self.cfg.domain_a, self.cfg.domain_b

    def split(self, x, y):
        """The batch's images of class domain_a and of domain_b, (n_a, C, H, W) and (n_b, C, H, W)."""
        if y is None:
            raise ValueError("CycleGAN needs the class labels y to split a batch into its two domains")
        return x[y == self.cfg.domain_a], x[y == self.cfg.domain_b]

    def configure_optimizers(self):
        betas = (self.cfg.beta1, self.cfg.beta2)
        g = [*self.G_AB.parameters(), *self.G_BA.parameters()]
        d = [*self.D_A.parameters(), *self.D_B.parameters()]
        return {"g": torch.optim.Adam(g, lr=self.cfg.lr, betas=betas),
                "d": torch.optim.Adam(d, lr=self.cfg.lr, betas=betas)}

    def lr_schedulers(self, optimizers, total_steps):
        start = int(self.cfg.decay_from * total_steps)
        if start >= total_steps:
            return []

        def factor(step):
            return 1.0 if step < start else max(0.0, (total_steps - step) / (total_steps - start))
        return [torch.optim.lr_scheduler.LambdaLR(o, factor) for o in optimizers.values()]

    def generator_losses(self, a, b):
        """G's losses on a (n_a, C, H, W) and b (n_b, C, H, W) in [-1, 1]; either may be empty, and a
        term without images is 0. Returns (losses, fake_b, fake_a); cycle and identity are unweighted
        sums of the two directions' mean L1."""
        cfg, dev = self.cfg, (a if len(a) else b).device
        out = {k: scalar_zero(dev) for k in ("adv_ab", "adv_ba", "cycle", "identity")}
        fake_b = fake_a = None
        if len(a):
            fake_b = self.G_AB(a)                                              # (n_a, C, H, W)
            out["adv_ab"] = gan_loss(self.D_B(fake_b), True, "lsgan")
            out["cycle"] = out["cycle"] + (self.G_BA(fake_b).float() - a).abs().mean()
            if cfg.lambda_id > 0:
                out["identity"] = out["identity"] + (self.G_BA(a).float() - a).abs().mean()
        if len(b):
            fake_a = self.G_BA(b)                                              # (n_b, C, H, W)
            out["adv_ba"] = gan_loss(self.D_A(fake_a), True, "lsgan")
            out["cycle"] = out["cycle"] + (self.G_AB(fake_a).float() - b).abs().mean()
            if cfg.lambda_id > 0:
                out["identity"] = out["identity"] + (self.G_AB(b).float() - b).abs().mean()
        out["g_loss"] = (out["adv_ab"] + out["adv_ba"] + cfg.lambda_cyc * out["cycle"]
                         + cfg.lambda_id * cfg.lambda_cyc * out["identity"])
        return out, fake_b, fake_a

    def discriminator_losses(self, a, b, fake_b, fake_a):
        """Halved least-squares losses of D_A (real a vs G_BA(b)) and D_B (real b vs G_AB(a)); fakes detached."""
        dev = (a if len(a) else b).device
        d_a = d_b = scalar_zero(dev)
        if len(a):
            d_a = d_a + 0.5 * gan_loss(self.D_A(a), True, "lsgan")
            d_b = d_b + 0.5 * gan_loss(self.D_B(fake_b.detach()), False, "lsgan")
        if len(b):
            d_b = d_b + 0.5 * gan_loss(self.D_B(b), True, "lsgan")
            d_a = d_a + 0.5 * gan_loss(self.D_A(fake_a.detach()), False, "lsgan")
        return {"d_a": d_a, "d_b": d_b, "d_loss": d_a + d_b}

    def train_step(self, x, y, optimizers, amp=nullcontext):
        a, b = (h * 2 - 1 for h in self.split(x, y))                           # in [-1, 1]
        # torch.full, not torch.tensor: a fill kernel, not a copy from the host that waits for the GPU
        counts = {"n_a": torch.full((), float(len(a)), device=x.device),
                  "n_b": torch.full((), float(len(b)), device=x.device)}
        if not len(a) and not len(b):
            zero = scalar_zero(x.device)
            keys = ("loss", "g_loss", "d_loss", "adv_ab", "adv_ba", "cycle", "identity", "d_a", "d_b")
            return {**{k: zero for k in keys}, **counts}
        # Generators first, with the discriminators frozen (as in the authors' code).
        self.D_A.requires_grad_(False)
        self.D_B.requires_grad_(False)
        with amp():
            g, fake_b, fake_a = self.generator_losses(a, b)
        optimizers["g"].zero_grad(set_to_none=True)
        g["g_loss"].backward()
        optimizers["g"].step()
        self.D_A.requires_grad_(True)
        self.D_B.requires_grad_(True)
        with amp():
            d = self.discriminator_losses(a, b, fake_b, fake_a)
        optimizers["d"].zero_grad(set_to_none=True)
        d["d_loss"].backward()
        optimizers["d"].step()
        if self.ema is not None:
            self.ema[0].update(self.G_AB)
            self.ema[1].update(self.G_BA)
        out = {"loss": g["g_loss"] + d["d_loss"], **g, **d}
        return {**{k: v.detach().float() for k, v in out.items()}, **counts}

    def loss(self, x, y=None):
        """Both players' losses on a batch, without updating anything (for validation)."""
        a, b = (h * 2 - 1 for h in self.split(x, y))
        g, fake_b, fake_a = self.generator_losses(a, b)
        d = self.discriminator_losses(a, b, fake_b, fake_a)
        return {"loss": g["g_loss"] + d["d_loss"], **g, **d}

    # ---- translation, [0, 1] in and out
    def sampling_network(self):
        return self.ema if self.ema is not None else nn.ModuleList([self.G_AB, self.G_BA])

    def _g(self, i):
        return self.ema[i].net if self.ema is not None else (self.G_AB, self.G_BA)[i]

    @torch.no_grad()
    def translate_ab(self, x):  # (B, C, H, W) in [0, 1], domain A -> domain B
        return batched(self._g(0), x)

    @torch.no_grad()
    def translate_ba(self, x):
        return batched(self._g(1), x)

    @torch.no_grad()
    def progress_grid(self, split: D.Split, n: int = 64) -> torch.Tensor:
        """(n, C, H, W) in [0, 1]: pairs (a, G_AB(a)) then (b, G_BA(b)) for the first n/4 training images
        of each domain; shown 8 a row, that is 4 pairs."""
        k = max(1, n // 4)
        dev = next(self.parameters()).device
        a = D.to_unit(split.images[split.labels == self.cfg.domain_a][:k]).to(dev)
        b = D.to_unit(split.images[split.labels == self.cfg.domain_b][:k]).to(dev)
        pairs = torch.cat([torch.stack([a, self.translate_ab(a)], 1), torch.stack([b, self.translate_ba(b)], 1)])
        return pairs.flatten(0, 1)[:n]


# ---------------------------------------------------------------------------- super-resolution
