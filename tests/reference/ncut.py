"""Eager reference for seed 003's soft normalized cut, restated per class as the seed loops."""

import math

import torch
import torch.nn.functional as F


def gaussian_kernel(radius, sigma):
    """(1, 1, 2r+1, 2r+1): exp(-(dx^2 + dy^2) / (2 sigma^2)), peak 1 (W-Net's norm.pdf(d / sigma) / norm.pdf(0))."""
    size = 2 * radius + 1
    k = torch.empty(size, size, dtype=torch.float64)
    for i in range(size):
        for j in range(size):
            k[i, j] = math.exp(-((i - radius) ** 2 + (j - radius) ** 2) / (2 * sigma ** 2))
    return k.view(1, 1, size, size)


def ncut_loss(probs, image, radius=5, sigma_spatial=4.0, sigma_value=10.0, spatial_gaussian=False):
    """K - sum_k |num_k / (den_k + 1e-6)| with the seed's class-mean weights (any spatial dims)."""
    p_all = probs.double()
    img = image.double()
    if img.dim() == p_all.dim() - 1:
        img = img.unsqueeze(1)
    dims = tuple(range(2, p_all.dim()))
    K = p_all.shape[1]
    loss = 0
    for k in range(K):
        p = p_all[:, k:k + 1]
        mean = (img * p).mean(dim=dims, keepdim=True) / ((p.mean(dim=dims, keepdim=True)) + 1e-5)
        diff = (img - mean).pow(2).sum(dim=1, keepdim=True)
        w = torch.exp(-diff.pow(2) / sigma_value ** 2)
        if spatial_gaussian:
            g = gaussian_kernel(radius, sigma_spatial)
            num = torch.sum(p * F.conv2d(p * w, g, padding=radius))
            den = torch.sum(p * F.conv2d(w, g, padding=radius))
        else:
            num = torch.sum(p * p * w)
            den = torch.sum(p * w)
        loss = loss + torch.abs(num / (den + 1e-6))
    return K - loss
