"""A held-out split of a training set, and CIFAR(X)/ImageNet(X) subsets.

HDKD (and MSDNet's budgeted evaluation) holds out part of the *training* set:
5,000 CIFAR-100 images, 50,000 ImageNet images. The held-out split fits the
budgeted-classification thresholds and drives HDKD's loss-weight (γ) updates;
the model's θ never trains on it. :class:`HeldOutSplit` wraps any MMPretrain
dataset and returns one side of that partition:

* ``split='heldout'``: the held-out images;
* ``split='train'``: the remaining training images, optionally reduced to
  ``per_class`` images of every class (the paper's CIFAR(X)/ImageNet(X)).

The partition itself (how it is drawn, its checks) is
:mod:`hdkd_mm.datasets.partition`.

Pipelines
---------
``pipeline=None`` (default): items are ``base[i]``, the base dataset's own
pipeline applies. ``pipeline=[...]``: the wrapper applies *its* pipeline to the
raw ``base.get_data_info(i)``, and the base dataset's pipeline is not used. The
configs give the base dataset ``pipeline=[]`` and each wrapper its pipeline, so
the held-out split is the same base data with the unaugmented test pipeline
while the training split gets the augmentation::

    base = dict(type='LocalCIFAR100', data_root='data/cifar100', split='train',
                pipeline=[])
    train = dict(type='HeldOutSplit', dataset=base, split='train',
                 heldout_size=5000, pipeline=train_pipeline)
    heldout = dict(type='HeldOutSplit', dataset=base, split='heldout',
                   heldout_size=5000, pipeline=test_pipeline)
"""
import copy
import logging
import os.path as osp
from typing import Callable, List, Optional, Union

import numpy as np
from mmengine.dataset import BaseDataset, Compose, force_full_init
from mmengine.logging import print_log

from mmpretrain.registry import DATASETS, TRANSFORMS
from .partition import carved_text, check_sizes, partition_indices

SPLITS = ('train', 'heldout', 'test')


def _norm_path(p) -> str:
    if not p:
        return ''
    p = str(p)
    return p if '://' in p else osp.normpath(osp.abspath(p))


def _base_identity(dataset) -> str:
    """What identifies the base dataset in :meth:`HeldOutSplit.split_key`."""
    root = _norm_path(getattr(dataset, 'data_root', ''))
    fields = [f'data_root={root!r}']
    ann = getattr(dataset, 'ann_file', '')
    if ann:
        fields.append(f'ann_file={_norm_path(ann)!r}')
    prefix = getattr(dataset, 'data_prefix', None)
    if isinstance(prefix, dict):
        # Prefixes equal to the data root (CIFAR, MNIST) add nothing.
        prefix = {
            k: _norm_path(v)
            for k, v in sorted(prefix.items())
            if isinstance(v, str) and v and _norm_path(v) != root
        }
        if prefix:
            fields.append(f'data_prefix={prefix!r}')
    split = getattr(dataset, 'split', None)
    if split is not None:
        fields.append(f'split={split!r}')
    fields.append(f'num_samples={len(dataset)}')
    return f'{type(dataset).__name__}({", ".join(fields)})'


@DATASETS.register_module()
class HeldOutSplit:
    """One side of a seeded (train | held-out) partition of a dataset.

    Args:
        dataset (dict | BaseDataset): the full training set (config or
            instance). Give it ``pipeline=[]`` when the wrapper has its own.
        split (str): ``'train'`` (the remaining training images),
            ``'heldout'``, or ``'test'`` (needs ``test_size > 0``).
        heldout_size (int): images held out (5000 for CIFAR-100, 50000 for
            ImageNet in the paper). 0: no held-out split (``split='train'``
            is then the whole set, or its ``per_class`` subset).
        test_size (int): images carved out as a stratified test split (0,
            the default: none; the test set is then the base data's own).
            Build every split of one partition with the same value.
        per_class (int, optional): for ``split='train'`` only: keep X images
            of every class (CIFAR(X)/ImageNet(X)). None keeps them all.
        seed (int): seed of the partition (and of the per-class subset).
            Build the train and held-out splits with the same value.
        stratified (bool): hold out the same share of every class instead of
            a uniformly random subset (the MSDNet reference). Default False.
        pipeline (list, optional): see the module docstring. None uses the
            base dataset's pipeline.
        lazy_init (bool, optional): defer loading and splitting until first
            use (or ``full_init()``). None: lazy when the base dataset is
            (``lazy_init=True`` in its config, or a not yet initialised
            instance).
        max_refetch (int): for ``split='train'``, how often to draw another
            image of the split when the pipeline returns None.
    """

    def __init__(self,
                 dataset: Union[dict, BaseDataset],
                 split: str = 'train',
                 heldout_size: int = 5000,
                 per_class: Optional[int] = None,
                 test_size: int = 0,
                 seed: int = 0,
                 stratified: bool = False,
                 pipeline: Optional[List[Union[dict, Callable]]] = None,
                 lazy_init: Optional[bool] = None,
                 max_refetch: int = 1000):
        if split not in SPLITS:
            raise ValueError(
                f'HeldOutSplit: split={split!r} is not supported; fix: use '
                "split='train' (remaining training images), "
                "split='heldout' (the held-out images) or split='test' (a "
                'test split carved from the training set, with test_size > '
                "0). Otherwise the test set is the base dataset's own test "
                'split, not a HeldOutSplit.')
        if split != 'train' and per_class is not None:
            raise ValueError(
                f'HeldOutSplit: per_class={per_class} applies to '
                f"split='train' only; fix: remove per_class from the {split} "
                'dataset (the held-out and test splits are never '
                'subsampled).')
        if split == 'test' and not test_size:
            raise ValueError(
                "HeldOutSplit: split='test' with test_size=0 is empty; fix: "
                'set test_size > 0 (e.g. 10000) in every split of the '
                'partition (train, heldout and test).')
        if split == 'heldout' and heldout_size == 0:
            raise ValueError(
                "HeldOutSplit: split='heldout' with heldout_size=0 is empty; "
                'fix: set heldout_size > 0 (e.g. 5000) in both the train and '
                'the held-out dataset.')
        check_sizes(heldout_size, per_class, who='HeldOutSplit: ')

        if isinstance(dataset, dict):
            if lazy_init is None:
                lazy_init = bool(dataset.get('lazy_init', False))
            self.dataset = DATASETS.build(dataset)
        elif hasattr(dataset, 'get_data_info') and hasattr(dataset, '__len__'):
            if lazy_init is None:
                lazy_init = not getattr(dataset, '_fully_initialized', True)
            self.dataset = dataset
        else:
            raise TypeError('HeldOutSplit: `dataset` must be a dataset config '
                            f'dict or a dataset, not {type(dataset)}.')

        self.split = split
        self.heldout_size = int(heldout_size)
        self.per_class = None if per_class is None else int(per_class)
        self.test_size = int(test_size)
        self.seed = int(seed)
        self.stratified = bool(stratified)
        self.max_refetch = max_refetch
        self.test_mode = split != 'train'

        if pipeline is None:
            self.pipeline = None
        else:
            transforms = [
                TRANSFORMS.build(t) if isinstance(t, dict) else t
                for t in pipeline
            ]
            self.pipeline = Compose(transforms)
            base_pipe = getattr(self.dataset, 'pipeline', None)
            if getattr(base_pipe, 'transforms', None):
                print_log(
                    'HeldOutSplit applies its own pipeline to the raw data '
                    'infos; the base dataset\'s pipeline is not used (give '
                    'the base dataset pipeline=[] to silence this).',
                    logger='current',
                    level=logging.WARNING)

        self._indices: Optional[np.ndarray] = None
        self._labels: Optional[np.ndarray] = None
        self._fully_initialized = False
        if not lazy_init:
            self.full_init()

    # -- initialisation ---------------------------------------------------
    def _base_labels(self) -> np.ndarray:
        """Integer class labels of every base-dataset image (cached)."""
        if self._labels is None:
            ds = self.dataset
            if hasattr(ds, 'get_gt_labels'):
                labels = np.asarray(ds.get_gt_labels())
            elif hasattr(ds, 'get_cat_ids'):
                labels = np.array([ds.get_cat_ids(i) for i in range(len(ds))])
            else:
                labels = np.array([
                    np.asarray(ds.get_data_info(i)['gt_label'])
                    for i in range(len(ds))
                ])
            labels = np.asarray(labels)
            if labels.ndim == 2 and labels.shape[1] == 1:
                labels = labels[:, 0]
            if labels.ndim != 1:
                raise ValueError(
                    'HeldOutSplit: per_class and stratified need one integer '
                    f'label per image; got labels of shape {labels.shape}.')
            self._labels = labels.astype(np.int64)
        return self._labels

    def full_init(self):
        """Load the base dataset and compute the split (once)."""
        if self._fully_initialized:
            return
        if hasattr(self.dataset, 'full_init'):
            self.dataset.full_init()
        n = len(self.dataset)
        need_labels = self.stratified or self.test_size > 0 or (
            self.split == 'train' and self.per_class is not None)
        labels = self._base_labels() if need_labels else None
        classes = self._classes()
        if self.heldout_size + self.test_size >= n:
            raise ValueError(
                'HeldOutSplit: '
                f'{carved_text(self.heldout_size, self.test_size)} must be '
                f'smaller than the training set ({n} images in '
                f'{type(self.dataset).__name__}); fix: lower heldout_size'
                f'{" or test_size" if self.test_size else ""}.')
        part = partition_indices(
            n,
            self.heldout_size,
            seed=self.seed,
            labels=labels,
            stratified=self.stratified,
            per_class=self.per_class if self.split == 'train' else None,
            num_classes=None if classes is None else len(classes),
            class_names=classes,
            test_size=self.test_size)
        self._indices = getattr(part, self.split)
        self._indices.setflags(write=False)
        self._fully_initialized = True

    # -- identity of the split --------------------------------------------
    @property
    @force_full_init
    def indices(self) -> np.ndarray:
        """Indices (into the base dataset) of this split, sorted, read-only."""
        return self._indices

    @force_full_init
    def split_key(self) -> str:
        """What determines the partition: the base dataset (class, data root,
        annotation file, prefix, split, size), the seed, heldout_size, the
        stratification and the test size (named only when > 0, so two-way
        keys are unchanged). Splits with equal keys are disjoint by
        construction (``per_class`` does not enter the key: a CIFAR(X)
        subset is still disjoint from the held-out split)."""
        test = f'|test_size={self.test_size}' if self.test_size else ''
        return (f'{_base_identity(self.dataset)}|seed={self.seed}'
                f'|heldout_size={self.heldout_size}'
                f'|stratified={self.stratified}{test}')

    # -- dataset API --------------------------------------------------------
    def _classes(self):
        return getattr(self.dataset, 'metainfo', {}).get('classes', None)

    @property
    def metainfo(self) -> dict:
        return copy.deepcopy(getattr(self.dataset, 'metainfo', {}))

    @property
    def CLASSES(self):
        return self._classes()

    @property
    def class_to_idx(self):
        return {cat: i for i, cat in enumerate(self.CLASSES or ())}

    @force_full_init
    def __len__(self) -> int:
        return len(self._indices)

    @force_full_init
    def get_data_info(self, idx: int) -> dict:
        """The raw data info of the idx-th image of the split; ``sample_idx``
        is the index in the split, ``base_idx`` the index in the base."""
        if idx < 0:
            idx += len(self)
        base_idx = int(self._indices[idx])
        info = self.dataset.get_data_info(base_idx)
        info['sample_idx'] = idx
        info['base_idx'] = base_idx
        return info

    @force_full_init
    def get_cat_ids(self, idx: int) -> List[int]:
        return self.dataset.get_cat_ids(int(self._indices[idx]))

    @force_full_init
    def get_gt_labels(self) -> np.ndarray:
        """Ground-truth labels of the split, in split order."""
        return self._base_labels()[self._indices]

    def _prepare(self, idx):
        if self.pipeline is None:
            return self.dataset[int(self._indices[idx])]
        return self.pipeline(self.get_data_info(idx))

    @force_full_init
    def __getitem__(self, idx: int):
        if self.test_mode:
            data = self._prepare(idx)
            if data is None:
                raise RuntimeError('HeldOutSplit: the held-out pipeline '
                                   f'returned None for image {idx}.')
            return data
        for _ in range(self.max_refetch + 1):
            data = self._prepare(idx)
            if data is not None:
                return data
            idx = np.random.randint(0, len(self))
        raise RuntimeError(f'HeldOutSplit: no valid image after '
                           f'{self.max_refetch} refetches; check the '
                           'pipeline.')

    def __repr__(self) -> str:
        lines = [
            f'Dataset {type(self).__name__}', f'    Split: \t{self.split}',
            f'    Held out: \t{self.heldout_size} (seed {self.seed}, '
            f'{"stratified" if self.stratified else "random"})'
        ]
        if self.test_size:
            lines.append(f'    Test split: \t{self.test_size} (stratified)')
        if self.per_class is not None:
            lines.append(f'    Images per class: \t{self.per_class}')
        if self._fully_initialized:
            lines.append(f'    Number of samples: \t{len(self)}')
        else:
            lines.append("    Haven't been initialized")
        lines.append(f'    Base dataset: \t{type(self.dataset).__name__}')
        return '\n'.join(lines)


def _unwrap(ds):
    # Accept dataloaders too (``runner.train_dataloader``).
    if not isinstance(ds, HeldOutSplit) and isinstance(
            getattr(ds, 'dataset', None), HeldOutSplit):
        return ds.dataset
    return ds


def check_disjoint(train_ds, heldout_ds) -> str:
    """Prove that ``train_ds`` and ``heldout_ds`` share no image.

    Both must be :class:`HeldOutSplit` (or dataloaders over one) of the same
    base dataset, ``split='train'`` and ``split='heldout'``, built with the
    same seed, heldout_size and stratification (equal :meth:`split_key`);
    their indices are then intersected as well. Returns the split key;
    raises ``ValueError`` otherwise.
    """
    train_ds, heldout_ds = _unwrap(train_ds), _unwrap(heldout_ds)
    for name, ds, split in (('train_ds', train_ds, 'train'),
                            ('heldout_ds', heldout_ds, 'heldout')):
        if not isinstance(ds, HeldOutSplit):
            raise ValueError(
                f'check_disjoint: {name} is a {type(ds).__name__}, not a '
                'HeldOutSplit, so it cannot be proven disjoint; fix: wrap '
                f"the training set in HeldOutSplit(split='{split}').")
        if ds.split != split:
            raise ValueError(
                f"check_disjoint: {name} has split='{ds.split}', expected "
                f"split='{split}'.")
    tk, hk = train_ds.split_key(), heldout_ds.split_key()
    overlap = np.intersect1d(train_ds.indices, heldout_ds.indices).size
    tb, hb = tk.split('|', 1)[0], hk.split('|', 1)[0]
    if tb != hb:
        raise ValueError(
            'check_disjoint: the training and held-out splits come from '
            f'different base datasets ({tb} vs {hb}), so their indices '
            'cannot be compared; fix: build both from the same training set.')
    if overlap or tk != hk:
        what = (f'held-out split overlaps the training split ({overlap} '
                'shared images)' if overlap else
                'held-out split is not provably disjoint from the training '
                'split')
        raise ValueError(
            f'{what}: train key {tk!r} vs held-out key {hk!r}; fix: use the '
            'same seed/heldout_size (and stratified) in both, e.g. '
            'train_dataloader.dataset and heldout_dataloader.dataset.')
    return tk
