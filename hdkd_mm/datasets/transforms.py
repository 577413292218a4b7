"""Two small transforms for gray-scale datasets (Fashion-MNIST) feeding
3-channel CIFAR-style backbones. MMPretrain/MMCV have neither: MMCV's ``Pad``
and ``CenterCrop(auto_pad=True)`` pad at the bottom/right only."""
from typing import Sequence, Union

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform

from mmpretrain.registry import TRANSFORMS


@TRANSFORMS.register_module()
class CenterPad(BaseTransform):
    """Pad ``img`` evenly on all sides up to ``size`` (H, W) (or a square of
    ``size``); the odd pixel, if any, goes to the bottom/right. Images
    already at least that large are left as they are.

    Fashion-MNIST's 28×28 → 32×32 adds 2 background (0) pixels per side,
    which puts the images on the CIFAR geometry.
    """

    def __init__(self, size: Union[int, Sequence[int]], pad_val: int = 0):
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.pad_val = pad_val

    def transform(self, results: dict) -> dict:
        img = results['img']
        h, w = img.shape[:2]
        dh, dw = max(0, self.size[0] - h), max(0, self.size[1] - w)
        if dh or dw:
            img = mmcv.impad(img,
                             padding=(dw // 2, dh // 2, dw - dw // 2,
                                      dh - dh // 2),
                             pad_val=self.pad_val)
            results['img'] = img
            results['img_shape'] = img.shape[:2]
            results['pad_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(size={self.size}, ' \
               f'pad_val={self.pad_val})'


@TRANSFORMS.register_module()
class GrayToRGB(BaseTransform):
    """Repeat a gray ``img`` (H×W or H×W×1) into 3 equal channels (H×W×3);
    3-channel images pass unchanged."""

    def transform(self, results: dict) -> dict:
        img = results['img']
        if img.ndim == 3 and img.shape[2] == 3:
            return results
        if img.ndim == 3 and img.shape[2] == 1:
            img = img[..., 0]
        if img.ndim != 2:
            raise ValueError(
                f'GrayToRGB expects an H×W or H×W×1 image, got {img.shape}.')
        results['img'] = np.ascontiguousarray(
            np.repeat(img[..., None], 3, axis=2))
        return results
