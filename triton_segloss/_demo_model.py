"""The demo's pieces: a synthetic shapes data set made on the fly and a small U-Net.

Nothing here is downloaded: every batch is drawn from a ``torch.Generator``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ShapesData", "SmallUNet"]


class ShapesData:
    """Random discs, rectangles and triangles on a noisy, shaded background.

    ``batch(n)`` returns ``(image, mask)``: image ``(n, 1, size, size)`` float32,
    mask ``(n, 1, size, size)`` float32 in {0, 1} (1 inside any shape). Each image
    holds 1 to ``max_shapes`` shapes whose brightness differs from the background
    by a random contrast of either sign, under Gaussian noise and a random linear
    shading, so a threshold on intensity alone does not segment it.
    """

    def __init__(self, size: int = 64, max_shapes: int = 3, noise: float = 0.35, seed: int = 0,
                 device: torch.device | str = "cpu"):
        self.size = size
        self.max_shapes = max_shapes
        self.noise = noise
        self.device = torch.device(device)
        self.gen = torch.Generator(device="cpu").manual_seed(seed)
        ax = (torch.arange(size, dtype=torch.float32) + 0.5) / size
        self.yy, self.xx = torch.meshgrid(ax, ax, indexing="ij")  # (H, W) in (0, 1)

    def _u(self, *shape, lo=0.0, hi=1.0):
        return lo + (hi - lo) * torch.rand(shape, generator=self.gen)

    def batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        k = self.max_shapes
        x = self.xx.view(1, 1, *self.xx.shape)  # (1, 1, H, W), broadcast over (image, shape slot)
        y = self.yy.view(1, 1, *self.yy.shape)
        cx = self._u(n, k, 1, 1, lo=0.15, hi=0.85)
        cy = self._u(n, k, 1, 1, lo=0.15, hi=0.85)
        r = self._u(n, k, 1, 1, lo=0.08, hi=0.2)
        disc = (x - cx) ** 2 + (y - cy) ** 2 < r ** 2
        half_w = self._u(n, k, 1, 1, lo=0.06, hi=0.2)
        half_h = self._u(n, k, 1, 1, lo=0.06, hi=0.2)
        rect = ((x - cx).abs() < half_w) & ((y - cy).abs() < half_h)
        # a triangle: three vertices at random angles around the centre; inside = same side of all edges
        ang = self._u(n, k, 1, lo=0.0, hi=2 * math.pi) + (2 * math.pi / 3) * torch.arange(3.0)
        ang = ang + self._u(n, k, 3, lo=-0.4, hi=0.4)  # jittered around an equilateral triangle
        rad = self._u(n, k, 3, lo=0.12, hi=0.25)
        vx = cx.view(n, k, 1) + rad * torch.cos(ang)
        vy = cy.view(n, k, 1) + rad * torch.sin(ang)
        side = []
        for i in range(3):
            j = (i + 1) % 3
            ex, ey = (vx[..., j] - vx[..., i]).view(n, k, 1, 1), (vy[..., j] - vy[..., i]).view(n, k, 1, 1)
            side.append(ex * (y - vy[..., i].view(n, k, 1, 1)) - ey * (x - vx[..., i].view(n, k, 1, 1)) > 0)
        tri = side[0] & side[1] & side[2]  # vertices in counter-clockwise order: the interior is left of every edge
        kind = torch.randint(0, 3, (n, k, 1, 1), generator=self.gen)
        shape = torch.where(kind == 0, disc, torch.where(kind == 1, rect, tri))
        present = torch.arange(k).view(1, k, 1, 1) < torch.randint(1, k + 1, (n, 1, 1, 1), generator=self.gen)
        shape = shape & present
        contrast = self._u(n, k, 1, 1, lo=0.6, hi=1.4) * torch.where(self._u(n, k, 1, 1) < 0.5, -1.0, 1.0)
        image = (shape.float() * contrast).sum(1, keepdim=True)  # overlapping shapes add up
        shading = self._u(n, 1, 1, 1, lo=-0.5, hi=0.5) * (x - 0.5) + self._u(n, 1, 1, 1, lo=-0.5, hi=0.5) * (y - 0.5)
        image = image + shading + self.noise * torch.randn(image.shape, generator=self.gen)
        mask = shape.any(1, keepdim=True).float()
        return image.to(self.device), mask.to(self.device)


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class SmallUNet(nn.Module):
    """A two-level U-Net: ``(N, in_ch, H, W)`` -> logits ``(N, out_ch, H, W)`` (H, W divisible by 4)."""

    def __init__(self, in_ch: int = 1, out_ch: int = 1, width: int = 16):
        super().__init__()
        w = width
        self.enc1 = _block(in_ch, w)
        self.enc2 = _block(w, 2 * w)
        self.mid = _block(2 * w, 4 * w)
        self.up2 = nn.ConvTranspose2d(4 * w, 2 * w, 2, stride=2)
        self.dec2 = _block(4 * w, 2 * w)
        self.up1 = nn.ConvTranspose2d(2 * w, w, 2, stride=2)
        self.dec1 = _block(2 * w, w)
        self.head = nn.Conv2d(w, out_ch, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        m = self.mid(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([self.up2(m), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
        return self.head(d1)
