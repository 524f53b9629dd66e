"""ALIKED's whole extraction as one PyTorch module, for export to one ONNX graph.

``make export-aliked`` exports :class:`Extraction` from kornia's ``ALIKED`` (official
weights). It runs everything kornia's ``ALIKED.forward`` runs, image in, keypoints,
scores and descriptors out, so that on a GPU nothing larger than N x D leaves the device:

- the network, with two exact rewrites that keep the numbers and save most of the time:
  the deformable convolutions multiply their samples with one matrix product (kornia's
  einsum is slow in ONNX Runtime), and the score head's first 1 x 1 convolution is
  applied to each level before it is upsampled (both are linear, so they commute), so the
  128 x H x W feature map is never built;
- keypoint detection (DKD): strict local maxima, the strongest ``budget``, soft-argmax;
- the sparse deformable descriptor head (SDDH), reading the levels only where it samples.

Inputs: ``image`` uint8 [B, H, W, 3] RGB with H and W multiples of 32 (the caller pads the
photo by repeating its edges), ``crop`` int64 [4] (top, left, height, width: the photo
inside the padded image, the same for the whole batch), ``budget`` float32 [K] (only its
length is read: the most keypoints per image) and ``threshold`` float32 [] (the detection
score a keypoint needs; <= 0 keeps the strongest K).
Outputs, strongest maximum first, in pixels of the photo: ``keypoints`` [B, K, 2] (x, y),
``scores`` [B, K], ``descriptors`` [B, K, D] (unit length) and ``valid`` [B, K], which says
which of the K pass the threshold (the rest fill the fixed shape and are dropped).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 (PyTorch's convention)
from torch import nn

RADIUS = 2  # DKD's non-maximum radius
TEMPERATURE = 0.1  # DKD's soft-argmax temperature


def sample(maps: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Bilinear values of ``maps`` [B, C, H, W] at pixel positions ``x``, ``y`` [B, M]
    -> [B, C, M]; a corner outside the map counts as zero."""
    height, width = maps.shape[2], maps.shape[3]
    grid = torch.stack([(2 * x + 1) / width - 1, (2 * y + 1) / height - 1], dim=-1)
    return F.grid_sample(maps, grid[:, None], align_corners=False)[:, :, 0]


def upsampled(level: torch.Tensor, x: torch.Tensor, y: torch.Tensor, size: tuple) -> torch.Tensor:
    """Values at integer pixels ``x``, ``y`` [B, M] of ``level`` as ALIKED upsamples it to
    ``size`` (bilinear, corners aligned), without building the upsampled map."""
    height, width = level.shape[2], level.shape[3]
    return sample(level, x * (width - 1) / (size[1] - 1), y * (height - 1) / (size[0] - 1))


class MatmulDeformConv(nn.Module):
    """kornia's ``DeformableConv2d`` (3 x 3, stride 1, no mask) with its weights; the samples
    are read with ``grid_sample`` and multiplied by the kernel in one matrix product."""

    def __init__(self, deformable: nn.Module) -> None:
        super().__init__()
        self.offset_conv = deformable.offset_conv
        self.regular_conv = deformable.regular_conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        weight = self.regular_conv.weight  # [O, C, 3, 3]
        taps = weight.shape[2] * weight.shape[3]
        limit = max(height, width) / 4.0
        offset = self.offset_conv(x).clamp(-limit, limit).reshape(batch, taps, 2, height, width)
        ky, kx = torch.meshgrid(torch.arange(3.0), torch.arange(3.0), indexing="ij")
        rows = torch.arange(height, dtype=x.dtype)[:, None] - 1 + ky.reshape(taps, 1, 1)
        cols = torch.arange(width, dtype=x.dtype)[None, :] - 1 + kx.reshape(taps, 1, 1)
        ys = (rows + offset[:, :, 0]).reshape(batch, -1)  # [B, taps H W]
        xs = (cols + offset[:, :, 1]).reshape(batch, -1)
        taken = sample(x, xs, ys).reshape(batch, channels * taps, height * width)
        out = weight.reshape(weight.shape[0], -1) @ taken
        if self.regular_conv.bias is not None:
            out = out + self.regular_conv.bias[:, None]
        return out.reshape(batch, -1, height, width)


class Extraction(nn.Module):
    def __init__(self, aliked: nn.Module) -> None:
        super().__init__()
        self.m = aliked
        for block in (aliked.block3, aliked.block4):
            block.conv1 = MatmulDeformConv(block.conv1)
            block.conv2 = MatmulDeformConv(block.conv2)
        head = aliked.desc_head
        self.kernel = head.kernel_size
        self.positions = head.n_pos

    def levels(self, image: torch.Tensor) -> list[torch.Tensor]:
        """The four gated feature levels (full, 1/2, 1/8, 1/32 size) whose upsampled
        concatenation is ALIKED's 128 x H x W feature map."""
        m = self.m
        x1 = m.block1(image)
        x2 = m.block2(m.pool2(x1))
        x3 = m.block3(m.pool4(x2))
        x4 = m.block4(m.pool4(x3))
        convs = (m.conv1, m.conv2, m.conv3, m.conv4)
        return [m.gate(conv(x)) for conv, x in zip(convs, (x1, x2, x3, x4), strict=True)]

    def score_map(self, levels: list[torch.Tensor], size: tuple) -> torch.Tensor:
        first, rest = self.m.score_head[0], self.m.score_head[1:]
        parts = first.weight.split(levels[0].shape[1], dim=1)  # its columns, level by level
        mixed = F.conv2d(levels[0], parts[0])
        for level, part in zip(levels[1:], parts[1:], strict=True):
            up = F.interpolate(F.conv2d(level, part), size, mode="bilinear", align_corners=True)
            mixed = mixed + up
        return torch.sigmoid(rest(mixed))[:, 0]

    def features_at(self, levels, x, y, size) -> torch.Tensor:
        """The unit-length feature map at integer pixels ``x``, ``y`` [B, M] -> [B, C, M]."""
        values = torch.cat([upsampled(level, x, y, size) for level in levels], dim=1)
        return values / values.norm(dim=1, keepdim=True).clamp(min=1e-12)

    def forward(self, image, crop, budget, threshold):
        batch, height, width = image.shape[0], image.shape[1], image.shape[2]
        size = (height, width)
        levels = self.levels(image.permute(0, 3, 1, 2).float() / 255.0)
        scores = self.score_map(levels, size)  # [B, H, W]
        top, left, crop_h, crop_w = crop[0], crop[1], crop[2], crop[3]

        # DKD: strict maxima of their 5 x 5 window inside the photo, RADIUS from its border
        rows = torch.arange(height)[:, None] - top
        cols = torch.arange(width)[None, :] - left
        inside = (rows >= 0) & (rows < crop_h) & (cols >= 0) & (cols < crop_w)
        away = (rows >= RADIUS) & (rows < crop_h - RADIUS) & (cols >= RADIUS)
        away = away & (cols < crop_w - RADIUS)
        masked = torch.where(inside, scores, -1.0)
        padded = F.pad(masked[:, None], (2, 2, 2, 2), value=-1.0)
        across = F.max_pool2d(padded, (2, 5), stride=1)  # rows above / below
        along = F.max_pool2d(padded, (1, 2), stride=1)  # left / right on the same row
        ring = torch.maximum(
            torch.maximum(across[:, 0, :height, :width], across[:, 0, 3 : 3 + height, :width]),
            torch.maximum(along[:, 0, 2 : 2 + height, :width], along[:, 0, 2 : 2 + height, 3:]),
        )
        peaks = torch.where((masked > ring) & away, masked, -1.0).reshape(batch, -1)
        peak, index = torch.topk(peaks, budget.shape[0], dim=1)
        mean = torch.where(inside, scores, 0.0).sum(dim=(1, 2)) / (crop_h * crop_w)
        # above the threshold; above the mean when no maximum is; with none, every maximum
        strong, positive = peak > threshold, threshold > 0
        fallback = positive & ~strong[:, :1]
        valid = (
            (positive & strong) | (fallback & (peak > mean[:, None])) | (~positive & (peak >= 0))
        )

        # soft-argmax over each maximum's window, then the score where the keypoint lands
        row = torch.div(index, width, rounding_mode="floor")
        col = index - row * width
        steps = torch.arange(-RADIUS, RADIUS + 1)
        dy, dx = steps.repeat_interleave(2 * RADIUS + 1), steps.repeat(2 * RADIUS + 1)
        flat = (index[:, :, None] + dy * width + dx).clamp(0, height * width - 1)
        window = scores.reshape(batch, -1).gather(1, flat.reshape(batch, -1))
        window = window.reshape(batch, -1, dy.shape[0])
        weights = torch.softmax(window / TEMPERATURE, dim=2)
        x = col + (weights * dx).sum(dim=2)
        y = row + (weights * dy).sum(dim=2)
        refined = sample(scores[:, None], x, y)[:, 0]
        descriptors = self.describe(levels, x, y, left, top, crop_w, crop_h, size)
        keypoints = torch.stack([x - left, y - top], dim=-1)
        return keypoints, refined, descriptors, valid

    def describe(self, levels, x, y, left, top, crop_w, crop_h, size) -> torch.Tensor:
        """SDDH: a K x K patch at each keypoint predicts P sampling offsets; the unit
        features there (zero outside the photo) are mixed into one descriptor."""
        head, kernel, positions = self.m.desc_head, self.kernel, self.positions
        batch, count = x.shape
        # the patch's corner in photo pixels, as kornia's get_patches places it
        corner_x = torch.trunc(torch.trunc(x - left) - kernel / 2 + 1)
        corner_y = torch.trunc(torch.trunc(y - top) - kernel / 2 + 1)
        corner_x = torch.minimum(corner_x.clamp(min=0), (crop_w - 1 - kernel).float()) + left
        corner_y = torch.minimum(corner_y.clamp(min=0), (crop_h - 1 - kernel).float()) + top
        ky, kx = torch.meshgrid(torch.arange(kernel), torch.arange(kernel), indexing="ij")
        px = (corner_x[:, :, None] + kx.reshape(-1)).reshape(batch, -1)
        py = (corner_y[:, :, None] + ky.reshape(-1)).reshape(batch, -1)
        patch = self.features_at(levels, px, py, size)  # [B, C, N K K]
        channels = patch.shape[1]
        patch = patch.reshape(batch, channels, count, kernel * kernel).permute(0, 2, 1, 3)
        conv1, conv2 = head.offset_conv[0], head.offset_conv[2]
        hidden = head.offset_conv[1](
            patch.reshape(batch, count, -1) @ conv1.weight.reshape(2 * positions, -1).T + conv1.bias
        )
        offsets = hidden @ conv2.weight[:, :, 0, 0].T + conv2.bias
        limit = torch.maximum(crop_h, crop_w) / 4.0
        offsets = torch.minimum(torch.maximum(offsets, -limit), limit)
        offsets = offsets.reshape(batch, count, 2, positions)
        sx = (x[:, :, None] + offsets[:, :, 0]).reshape(batch, -1)  # [B, N P]
        sy = (y[:, :, None] + offsets[:, :, 1]).reshape(batch, -1)

        # bilinear over the unit feature map, a corner outside the photo counting zero
        x0, y0 = torch.floor(sx), torch.floor(sy)
        fx, fy = sx - x0, sy - y0
        cx = torch.stack([x0, x0 + 1, x0, x0 + 1], dim=-1)  # [B, N P, 4]
        cy = torch.stack([y0, y0, y0 + 1, y0 + 1], dim=-1)
        w = torch.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], dim=-1)
        w = w * ((cx >= left) & (cx < left + crop_w) & (cy >= top) & (cy < top + crop_h))
        cx = torch.minimum(torch.maximum(cx, left.float()), (left + crop_w - 1).float())
        cy = torch.minimum(torch.maximum(cy, top.float()), (top + crop_h - 1).float())
        corners = self.features_at(levels, cx.reshape(batch, -1), cy.reshape(batch, -1), size)
        corners = corners.reshape(batch, channels, count * positions, 4)
        sampled = (corners * w[:, None]).sum(dim=3)  # [B, C, N P]
        mixed = head.offset_conv[1](head.sf_conv.weight[:, :, 0, 0] @ sampled)
        mixed = mixed.reshape(batch, channels, count, positions).permute(0, 2, 3, 1)
        agg = head.agg_weights.reshape(positions * channels, -1)
        descriptors = mixed.reshape(batch, count, -1) @ agg
        return descriptors / descriptors.norm(dim=2, keepdim=True).clamp(min=1e-12)
