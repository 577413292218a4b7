"""MMPretrain's dataset classes, for local files only.

The stock classes download when files are missing (``download=True`` is their
default) and their errors then say "you can specify `download=True`". These
thin subclasses keep MMPretrain's loading code and change only that:

* ``download=False`` by default; missing files raise ``FileNotFoundError``
  naming the data root, the files looked for and the fix;
* :class:`LocalCIFAR10` / :class:`LocalCIFAR100`: ``verify_md5=False`` skips
  MMPretrain's md5 check of the pickles (for your own files in the official
  format, e.g. tiny test sets); with ``verify_md5=True`` (default) a mismatch
  raises a clear error instead of trying to download;
* :class:`LocalFashionMNIST`: also reads the ``.gz`` files as they are
  installed by Debian's ``dataset-fashion-mnist`` package
  (``/usr/share/datasets/fashion-mnist``, read-only: nothing is extracted),
  with MMPretrain's own idx parser (and its checks); it selects the files
  by ``split`` (MMPretrain 1.2.0's ``MNIST``/``FashionMNIST`` select them by
  ``test_mode``, so ``split='test'`` alone would load the training images).
  Items are as MMPretrain's: ``img`` a 28×28 ``uint8`` array (gray, no channel
  axis), ``gt_label`` an ``int64`` scalar;
* :class:`LocalImageNet`: a missing data root / split folder / annotation
  file raises a clear error before MMPretrain scans the folders.
"""
import gzip
from typing import List, Optional

import mmengine.dist as dist
import numpy as np
import torch
from mmengine.fileio import exists, join_path

from mmpretrain.datasets import CIFAR10, CIFAR100, FashionMNIST, ImageNet
from mmpretrain.datasets.mnist import read_sn3_pascalvincent_tensor
from mmpretrain.datasets.utils import rm_suffix
from mmpretrain.registry import DATASETS

DEBIAN_FASHION_MNIST = '/usr/share/datasets/fashion-mnist'


class _LocalCIFARMixin:
    """See the module docstring."""

    def __init__(self,
                 data_root: str = '',
                 split: str = 'train',
                 metainfo: Optional[dict] = None,
                 download: bool = False,
                 data_prefix: str = '',
                 test_mode: bool = False,
                 verify_md5: bool = True,
                 **kwargs):
        self.verify_md5 = verify_md5
        if not verify_md5:
            # MMPretrain skips the check of entries whose md5 is None.
            cls = type(self)
            self.train_list = [[f, None] for f, _ in cls.train_list]
            self.test_list = [[f, None] for f, _ in cls.test_list]
            self.meta = {**cls.meta, 'md5': None}
        self._integrity_ok = False
        super().__init__(data_root=data_root,
                         split=split,
                         metainfo=metainfo,
                         download=download,
                         data_prefix=data_prefix,
                         test_mode=test_mode,
                         **kwargs)

    def _check_integrity(self):
        # Memoised: the md5 of the 160 MB CIFAR-100 pickle is not computed
        # twice (once here, once in MMPretrain's loader).
        if not self._integrity_ok:
            self._integrity_ok = super()._check_integrity()
        return self._integrity_ok

    def load_data_list(self):
        if not self.download:
            root = self.data_prefix['root']
            files = [f for f, _ in self.train_list + self.test_list]
            missing = [
                f for f in files
                if not exists(join_path(root, self.base_folder, f))
            ]
            if missing:
                raise FileNotFoundError(
                    f'{type(self).__name__}: cannot find '
                    f'{", ".join(missing)} in '
                    f'{join_path(root, self.base_folder)!r} (data_root='
                    f'{self.data_root!r}); fix: download {self.url} and '
                    'extract it into data_root (so that data_root/'
                    f'{self.base_folder}/{files[0]} exists), or pass the '
                    'data_root that holds it. download=True fetches it (needs '
                    'internet and a writable data_root).')
            if not self._check_integrity():
                raise ValueError(
                    f'{type(self).__name__}: the files in '
                    f'{join_path(root, self.base_folder)!r} do not match the '
                    'md5 sums of the official release; fix: re-extract '
                    f'{self.filename}, or pass verify_md5=False for your own '
                    'files in the official pickle format.')
        return super().load_data_list()


@DATASETS.register_module()
class LocalCIFAR10(_LocalCIFARMixin, CIFAR10):
    """MMPretrain's :class:`CIFAR10`, local files only (module docstring)."""


@DATASETS.register_module()
class LocalCIFAR100(_LocalCIFARMixin, CIFAR100):
    """MMPretrain's :class:`CIFAR100`, local files only (module docstring).

    Args: as :class:`mmpretrain.datasets.CIFAR100`, plus ``verify_md5``
    (default True); ``download`` defaults to False.
    """


class _WritableReader:
    """A file whose ``read()`` gives a bytearray, so that the tensor
    MMPretrain's parser builds on it is writable (no PyTorch warning)."""

    def __init__(self, f):
        self.f = f

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def read(self):
        return bytearray(self.f.read())


def _read_idx(path: str, ndim: int):
    """MMPretrain's ``read_image_file`` (ndim 3) / ``read_label_file``
    (ndim 1), for extracted or gzip-compressed idx files."""
    opener = gzip.open if path.endswith('.gz') else open
    with opener(path, 'rb') as f:
        x = read_sn3_pascalvincent_tensor(_WritableReader(f), strict=False)
    if x.ndimension() != ndim or x.dtype != torch.uint8:
        raise ValueError(f'{path!r} is not an idx{ndim} uint8 file '
                         f'(got {x.dtype}, {x.ndimension()} dims).')
    return x if ndim == 3 else x.long()


@DATASETS.register_module()
class LocalFashionMNIST(FashionMNIST):
    """Fashion-MNIST from local files, extracted or ``.gz``.

    ``data_root='/usr/share/datasets/fashion-mnist'`` after
    ``apt-get install dataset-fashion-mnist``. Args as MMPretrain's
    :class:`FashionMNIST`; ``download`` defaults to False.
    """

    def __init__(self,
                 data_root: str = '',
                 split: str = 'train',
                 metainfo: Optional[dict] = None,
                 download: bool = False,
                 data_prefix: str = '',
                 test_mode: bool = False,
                 **kwargs):
        super().__init__(data_root=data_root,
                         split=split,
                         metainfo=metainfo,
                         download=download,
                         data_prefix=data_prefix,
                         test_mode=test_mode,
                         **kwargs)

    def _split_files(self) -> List[Optional[str]]:
        """(images, labels) paths of ``self.split``: the extracted file if
        present, else the ``.gz`` one, else None."""
        root = self.data_prefix['root']
        files = self.train_list if self.split == 'train' else self.test_list
        paths = []
        for name, _ in files:
            found = None
            for candidate in (rm_suffix(name), name):
                path = join_path(root, candidate)
                if exists(path):
                    found = path
                    break
            paths.append(found)
        return paths

    def load_data_list(self):
        paths = self._split_files()
        if None in paths and self.download:
            # MMPretrain's download (and extraction) into data_root.
            if dist.is_main_process():
                self._download()
            dist.barrier()
            paths = self._split_files()
        if None in paths:
            files = self.train_list if self.split == 'train' else \
                self.test_list
            names = ', '.join(f for f, _ in files)
            raise FileNotFoundError(
                f'{type(self).__name__}: cannot find the {self.split} files '
                f'({names}, or their extracted versions) in data_root='
                f'{self.data_prefix["root"]!r}; fix: `apt-get install '
                'dataset-fashion-mnist` and use data_root='
                f'{DEBIAN_FASHION_MNIST!r}, or pass the data_root that holds '
                'them. download=True fetches them (needs internet and a '
                'writable data_root).')
        imgs = _read_idx(paths[0], 3)
        gt_labels = _read_idx(paths[1], 1)
        if len(imgs) != len(gt_labels):
            raise ValueError(f'{paths[0]!r} holds {len(imgs)} images but '
                             f'{paths[1]!r} {len(gt_labels)} labels.')
        # As MMPretrain's MNIST.load_data_list.
        return [{
            'img': img.numpy(),
            'gt_label': np.array(gt_label, dtype=np.int64)
        } for img, gt_label in zip(imgs, gt_labels)]


@DATASETS.register_module()
class LocalImageNet(ImageNet):
    """MMPretrain's :class:`ImageNet` with a clear error when the data root,
    the split folder or the annotation file is missing."""

    def load_data_list(self):
        if self.ann_file and not exists(self.ann_file):
            missing = self.ann_file
        elif not exists(self.img_prefix):
            missing = self.img_prefix
        else:
            return super().load_data_list()
        raise FileNotFoundError(
            f'{type(self).__name__}: {missing!r} does not exist (data_root='
            f'{self.data_root!r}); fix: put ILSVRC-2012 under data_root as '
            'train/<wnid>/*.JPEG and val/<wnid>/*.JPEG (or train/, val/ with '
            'meta/train.txt, meta/val.txt), or pass the data_root that holds '
            'it. Nothing is downloaded.')
