"""Inpainting masks ``(N, 1, H, W)`` float in {0, 1}, 1 = hole: LaMa-style random strokes and boxes,
or real masks read from a folder.

Random masks are rasterised with torch (distance from each pixel to each stroke segment), so they are
drawn batched on any device; the random parameters are drawn from the given ``torch.Generator`` (on
its own device), so a seed gives the same masks wherever they are rasterised.

Coverage control. Shapes are drawn one after the other, each one progressively (a stroke from its
start along its polyline, a box row by row), which gives every pixel a drawing time. Each mask draws
a target hole fraction uniformly from ``coverage`` and keeps exactly the first
``round(target * H * W)`` pixels in drawing order: the shapes before are complete and the last one
is cut where the target is reached, as if the painter stopped there. So every mask's hole fraction
lies in ``coverage`` by construction, in one batched pass with no rejection loop, and the fractions
are spread uniformly over the range. Shapes are added until every mask has enough drawn pixels; in
the rare case that ``max_shapes`` shapes are not enough (coverage near 1), the holes grow by
dilation until the target is met.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from restore.data.folder import apply_flips
from restore.degrade.sampling import rand_uniform

__all__ = ["MaskFolder", "RandomMask", "apply_mask", "random_masks"]

KINDS = ("mixed", "strokes", "boxes")

# LaMa's "thick" settings for 256 px training images (configs/training/data/abl-04-256-mh-dist...:
# irregular max_len 200, max_width 100, 1..5 vertices; box sizes 30..150, margin 10); scaled with
# min(H, W) / 256 here.
_REFERENCE_SIZE = 256.0
_STROKE_MAX_SEGMENTS = 5
_STROKE_MIN_LENGTH, _STROKE_MAX_LENGTH = 10.0, 200.0
_STROKE_MIN_WIDTH, _STROKE_MAX_WIDTH = 5.0, 100.0
_BOX_MIN, _BOX_MAX, _BOX_MARGIN = 30.0, 150.0, 10.0


def _check_coverage(coverage: float | Sequence[float]) -> tuple[float, float]:
    if isinstance(coverage, (int, float)):
        low = high = float(coverage)
    else:
        values = tuple(coverage)
        if len(values) != 2:
            raise ValueError(f"coverage must be a float or a (low, high) pair, got {coverage!r}")
        low, high = float(values[0]), float(values[1])
    if not 0.0 <= low <= high <= 1.0:
        raise ValueError(f"coverage must satisfy 0 <= low <= high <= 1, got {coverage!r}")
    return low, high


def _target_counts(
    n: int, pixels: int, low: float, high: float, generator: torch.Generator | None, gen_device
) -> Tensor:
    """Hole pixel count per mask, uniform in coverage, every count/pixels inside [low, high]."""
    lo_count = math.ceil(low * pixels - 1e-9)
    hi_count = math.floor(high * pixels + 1e-9)
    if lo_count > hi_count:
        raise ValueError(
            f"coverage ({low}, {high}) contains no achievable hole fraction for {pixels} pixels; "
            "widen the range or use a larger mask"
        )
    u = torch.rand(n, generator=generator, device=gen_device, dtype=torch.float64)
    counts = (lo_count + u * (hi_count - lo_count + 1)).floor().clamp(max=hi_count)
    return counts.long()


def _stroke_times(
    n: int, height: int, width: int, ys: Tensor, xs: Tensor, generator, gen_device, device
) -> Tensor:
    """One thick polyline stroke per mask: (n, H, W) drawing time in [0, 1), inf outside."""
    r = min(height, width) / _REFERENCE_SIZE
    segments = _STROKE_MAX_SEGMENTS
    count = torch.randint(1, segments + 1, (n,), generator=generator, device=gen_device)
    start_x = rand_uniform((n,), 0.0, width, generator, gen_device)
    start_y = rand_uniform((n,), 0.0, height, generator, gen_device)
    angle = rand_uniform((n, segments), 0.0, 2.0 * math.pi, generator, gen_device)
    length = r * rand_uniform((n, segments), _STROKE_MIN_LENGTH, _STROKE_MAX_LENGTH, generator, gen_device)
    thickness = r * rand_uniform((n, segments), _STROKE_MIN_WIDTH, _STROKE_MAX_WIDTH, generator, gen_device)
    radius = (thickness / 2).clamp(min=1.0)
    count, start_x, start_y, angle, length, radius = (
        t.to(device) for t in (count, start_x, start_y, angle, length, radius)
    )

    times = torch.full((n, height, width), math.inf, device=device)
    max_count = int(count.max())
    x0, y0 = start_x, start_y
    for j in range(segments):
        # as in LaMa, each vertex is clipped to the image, so strokes bend at the borders
        x1 = (x0 + length[:, j] * torch.cos(angle[:, j])).clamp(0.0, float(width))
        y1 = (y0 + length[:, j] * torch.sin(angle[:, j])).clamp(0.0, float(height))
        dx, dy = (x1 - x0)[:, None, None], (y1 - y0)[:, None, None]
        px, py = xs - x0[:, None, None], ys - y0[:, None, None]
        t = ((px * dx + py * dy) / (dx * dx + dy * dy).clamp(min=1e-12)).clamp(0.0, 1.0)
        ex, ey = px - t * dx, py - t * dy
        dist2 = ex * ex + ey * ey
        inside = (dist2 <= (radius[:, j] ** 2)[:, None, None]) & (j < count)[:, None, None]
        seg_time = (j + t) / count[:, None, None].to(t.dtype)
        times = torch.where(inside, torch.minimum(times, seg_time), times)
        if j + 1 >= max_count:
            break
        x0, y0 = x1, y1
    return times


def _box_times(
    n: int, height: int, width: int, ys: Tensor, xs: Tensor, generator, gen_device, device
) -> Tensor:
    """One axis-aligned box per mask: (n, H, W) drawing time in [0, 1) in raster order, inf outside."""
    r = min(height, width) / _REFERENCE_SIZE
    margin = _BOX_MARGIN * r

    def side(extent: int) -> tuple[Tensor, Tensor]:
        room = max(extent - 2.0 * margin, 1.0)
        smallest = min(_BOX_MIN * r, room)
        largest = min(_BOX_MAX * r, room)
        size = rand_uniform((n,), smallest, largest, generator, gen_device).round().clamp(1, extent)
        start = margin + rand_uniform((n,), 0.0, 1.0, generator, gen_device) * (room - size).clamp(min=0)
        start = start.floor().clamp(0, extent - 1)
        size = torch.minimum(size, extent - start)
        return start.to(device), size.to(device)

    x0, w = side(width)
    y0, h = side(height)
    x0, w, y0, h = (v[:, None, None] for v in (x0, w, y0, h))
    col, row = xs - 0.5 - x0, ys - 0.5 - y0  # integer offsets of pixel (row, col) inside the box
    inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    order = (row * w + col) / (h * w)
    return torch.where(inside, order, torch.full_like(order, math.inf))


def random_masks(
    n: int,
    height: int,
    width: int,
    *,
    coverage: float | Sequence[float] = (0.1, 0.5),
    kind: str = "mixed",
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    max_shapes: int = 48,
) -> Tensor:
    """LaMa-style random inpainting masks ``(n, 1, height, width)`` float32 in {0, 1}, 1 = hole.

    Args:
        n, height, width: batch size and mask size.
        coverage: (low, high) hole fraction; every mask's fraction lies in it exactly (see the
            module docstring). A single float asks for that fraction (to the nearest pixel above).
        kind: ``"strokes"`` (thick polylines: 1..5 segments with random angles, lengths 10..200 and
            widths 5..100 px at 256 px, scaled with the image), ``"boxes"`` (rectangles 30..150 px
            at 256 px) or ``"mixed"`` (each shape is a stroke or a box with probability 1/2).
        generator: random source; its device is where parameters are drawn. None uses torch's
            global generator.
        device: where the masks are rasterised; default: the generator's device, else CPU.
        max_shapes: shapes drawn per mask at most before the holes grow by dilation instead.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    for name, value, smallest in (("n", n, 0), ("height", height, 1), ("width", width, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < smallest:
            raise ValueError(f"{name} must be an int >= {smallest}, got {value!r}")
    if max_shapes < 1:
        raise ValueError(f"max_shapes must be >= 1, got {max_shapes!r}")
    low, high = _check_coverage(coverage)
    gen_device = generator.device if generator is not None else torch.device("cpu")
    device = torch.device(device) if device is not None else gen_device
    pixels = height * width
    targets = _target_counts(n, pixels, low, high, generator, gen_device).to(device)
    if n == 0:
        return torch.zeros(0, 1, height, width, device=device)

    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5)[None, :, None]
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5)[None, None, :]
    times = torch.full((n, height, width), math.inf, device=device)
    for k in range(max_shapes):
        # only masks that have not drawn enough pixels yet get another shape
        active = (torch.isfinite(times).flatten(1).sum(1) < targets).nonzero().squeeze(1)
        m = active.numel()
        if m == 0:
            break
        if kind == "strokes":
            shape = _stroke_times(m, height, width, ys, xs, generator, gen_device, device)
        elif kind == "boxes":
            shape = _box_times(m, height, width, ys, xs, generator, gen_device, device)
        else:
            is_box = (torch.rand(m, generator=generator, device=gen_device) < 0.5).to(device)
            stroke = _stroke_times(m, height, width, ys, xs, generator, gen_device, device)
            box = _box_times(m, height, width, ys, xs, generator, gen_device, device)
            shape = torch.where(is_box[:, None, None], box, stroke)
        times[active] = torch.minimum(times[active], k + shape)
    else:
        times = _grow(times, targets, float(max_shapes))

    # keep the first `target` pixels of each mask in drawing order
    order = torch.argsort(times.flatten(1), dim=1, stable=True)
    keep = (torch.arange(pixels, device=device)[None, :] < targets[:, None]).float()
    masks = torch.zeros(n, pixels, device=device).scatter_(1, order, keep)
    return masks.view(n, 1, height, width)


def _grow(times: Tensor, targets: Tensor, offset: float) -> Tensor:
    """Give undrawn pixels drawing times by dilating the holes until every target is reachable."""
    drawn = torch.isfinite(times)
    steps = 0
    limit = times.shape[-1] + times.shape[-2]
    while bool((drawn.flatten(1).sum(1) < targets).any()) and steps < limit:
        steps += 1
        grown = F.max_pool2d(drawn[:, None].float(), 3, stride=1, padding=1)[:, 0] > 0
        times = torch.where(grown & ~drawn, torch.full_like(times, offset + steps / limit), times)
        drawn = grown
    return times


def apply_mask(images: Tensor, masks: Tensor, fill: float = 0.0) -> Tensor:
    """Images ``(N, C, H, W)`` with holes (``masks`` (N, 1, H, W), 1 = hole) set to ``fill``."""
    return images * (1 - masks) + fill * masks


class RandomMask(nn.Module):
    """Random LaMa-style stroke/box masks for a batch of images (a pipeline step).

    ``RandomMask(coverage=(0.1, 0.5), kind="mixed")(images (N, C, H, W), generator=None)`` returns
    masks ``(N, 1, H, W)`` on the images' device, 1 = hole. See :func:`random_masks`.
    """

    def __init__(
        self,
        coverage: float | Sequence[float] = (0.1, 0.5),
        kind: str = "mixed",
        generator: torch.Generator | None = None,
        max_shapes: int = 48,
    ) -> None:
        super().__init__()
        self.coverage = _check_coverage(coverage)
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.kind = kind
        self.generator = generator
        self.max_shapes = max_shapes

    def forward(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        n, _, height, width = images.shape
        masks = random_masks(
            n,
            height,
            width,
            coverage=self.coverage,
            kind=self.kind,
            generator=generator if generator is not None else self.generator,
            device=images.device,
            max_shapes=self.max_shapes,
        )
        return masks.to(images.dtype) if images.is_floating_point() else masks

    def extra_repr(self) -> str:
        return f"coverage={self.coverage}, kind={self.kind!r}"


class MaskFolder:
    """Real inpainting masks read from a folder of images, binarised, resized and augmented.

    Files: every image under ``path`` (recursively); if some lie in a folder named ``masks`` or
    ``mask`` (as in EdgeConnect's ``*/masks/*.png`` beside ``*/images/``), only those are used.
    A pixel is a hole when its gray value is > 0.5 (after ``invert``).

    Args:
        path: the folder.
        size: ``(height, width)`` (or an int) to resize masks to (nearest) when they are read;
            ``None`` keeps each file's size until :meth:`sample` resizes it.
        invert: True if the files mark holes black (0) and known pixels white; False if white = hole
            (EdgeConnect, LaMa, NVIDIA irregular masks as EdgeConnect uses them). None (default)
            decides once for the folder: files are inverted when the median white fraction of up to
            32 files (evenly spaced in sorted order) exceeds 1/2, since holes are the minority in
            inpainting masks. The decision is in ``self.invert``.
        generator: default random source for :meth:`sample` (which mask, which flips).
        augment: random horizontal/vertical flips and transposition (rot90 with a flip).
        cache: keep binarised masks in memory after the first read (bool tensors).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        size: int | tuple[int, int] | None = None,
        invert: bool | None = None,
        generator: torch.Generator | None = None,
        *,
        augment: bool = True,
        cache: bool = True,
    ) -> None:
        from ..io.image import list_images

        self.path = Path(path)
        files = list_images(self.path, recursive=True)
        in_mask_dirs = [f for f in files if any(p.lower() in ("masks", "mask") for p in f.parent.parts)]
        self.files = in_mask_dirs or files
        if not self.files:
            raise ValueError(f"no mask images found in '{self.path}'")
        if isinstance(size, int):
            size = (size, size)
        if size is not None and (len(size) != 2 or min(size) < 1):
            raise ValueError(f"size must be None, an int or (height, width) > 0, got {size!r}")
        self.size = tuple(size) if size is not None else None
        self.generator = generator
        self.augment = augment
        self.cache = cache
        self._cache: dict[int, Tensor] = {}
        if invert is None:
            self.invert = False
            picks = sorted({round(i * (len(self.files) - 1) / 31) for i in range(32)})
            fractions = torch.tensor([self._load(i).float().mean().item() for i in picks])
            invert = bool(fractions.median() > 0.5)
            if invert:
                self._cache.clear()
        self.invert = bool(invert)

    def __len__(self) -> int:
        return len(self.files)

    def _load(self, index: int) -> Tensor:
        """Binarised mask ``(1, h, w)`` bool, True = hole."""
        if index in self._cache:
            return self._cache[index]
        from ..io.image import read_image

        gray = read_image(self.files[index], mode="keep").mean(dim=0, keepdim=True)
        hole = gray > 0.5
        if self.invert:
            hole = ~hole
        if self.size is not None and tuple(hole.shape[-2:]) != self.size:
            hole = F.interpolate(hole[None].float(), size=self.size, mode="nearest-exact")[0] > 0.5
        if self.cache:
            self._cache[index] = hole
        return hole

    def sample(
        self,
        n: int,
        height: int,
        width: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """``n`` masks ``(n, 1, height, width)`` float32, drawn with replacement, 1 = hole."""
        generator = generator if generator is not None else self.generator
        gen_device = generator.device if generator is not None else torch.device("cpu")
        picks = torch.randint(len(self.files), (n,), generator=generator, device=gen_device).tolist()
        flips = torch.rand(n, 3, generator=generator, device=gen_device).cpu() < 0.5
        out = []
        for i, pick in enumerate(picks):
            hole = self._load(pick)
            if self.augment:
                hole = apply_flips(hole, tuple(flips[i].tolist()))
            if tuple(hole.shape[-2:]) != (height, width):
                hole = F.interpolate(hole[None].float(), size=(height, width), mode="nearest-exact")[0] > 0.5
            out.append(hole)
        masks = torch.stack(out).float() if out else torch.zeros(0, 1, height, width)
        return masks.to(device if device is not None else gen_device)

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Masks ``(N, 1, H, W)`` for images ``(N, C, H, W)``, on the images' device."""
        n, _, height, width = images.shape
        return self.sample(n, height, width, generator=generator, device=images.device)

    def __repr__(self) -> str:
        return f"MaskFolder('{self.path}', files={len(self.files)}, size={self.size}, invert={self.invert})"
