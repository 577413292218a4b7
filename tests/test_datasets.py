"""Held-out splits, CIFAR(X) subsets and the local dataset classes, on tiny
files written in the real formats (and on Debian's Fashion-MNIST files when
the package is installed)."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

import hdkd_mm  # noqa: F401
from tiny_data import (write_cifar10_jpg, write_cifar100,
                       write_fashion_mnist, write_imagenet)
from hdkd_mm.datasets import (CenterPad, GrayToRGB, HeldOutSplit,
                              LocalFashionMNIST, check_disjoint,
                              partition_indices, split_indices)
from mmpretrain.datasets import CIFAR100, FashionMNIST, ImageNet
from mmpretrain.registry import DATASETS

CFG_DIR = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs',
                   '_base_', 'datasets')
DEBIAN_FMNIST = '/usr/share/datasets/fashion-mnist'
SPLIT_KEYS = ('train_dataloader', 'heldout_dataloader')
EVAL_KEYS = ('val_dataloader', 'test_dataloader')


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmpretrain')


def _no_download(*args, **kwargs):
    raise AssertionError('a download was attempted')


@pytest.fixture(autouse=True)
def _forbid_downloads(monkeypatch):
    import mmpretrain.datasets.cifar as cifar
    import mmpretrain.datasets.mnist as mnist
    monkeypatch.setattr(cifar, 'download_and_extract_archive', _no_download)
    monkeypatch.setattr(mnist, 'download_and_extract_archive', _no_download)


# -- configs ------------------------------------------------------------------
def _cfg(name, root, base_extra=None, **split_over):
    cfg = Config.fromfile(osp.join(CFG_DIR, name))
    for key in SPLIT_KEYS:
        ds = cfg[key]['dataset']
        ds['dataset']['data_root'] = str(root)
        ds['dataset'].update(base_extra or {})
        ds.update(split_over)
    for key in EVAL_KEYS:
        cfg[key]['dataset']['data_root'] = str(root)
        cfg[key]['dataset'].update(base_extra or {})
    for key in SPLIT_KEYS + EVAL_KEYS:
        cfg[key].update(num_workers=0, persistent_workers=False)
    return cfg


@pytest.fixture(scope='module')
def cifar(tmp_path_factory):
    root = tmp_path_factory.mktemp('cifar100')
    return root, write_cifar100(str(root))


def _cifar_cfg(root, **split_over):
    split_over.setdefault('heldout_size', 100)
    return _cfg('cifar100_heldout.py', root, dict(verify_md5=False),
                **split_over)


def _build(cfg, key):
    return DATASETS.build(cfg[key]['dataset'])


# -- CIFAR-100 -------------------------------------------------------------
def test_cifar100_config_builds_disjoint_splits_from_real_pickles(cifar):
    root, raw = cifar
    cfg = _cifar_cfg(root)
    train, held = _build(cfg,
                         'train_dataloader'), _build(cfg, 'heldout_dataloader')
    test = _build(cfg, 'val_dataloader')
    assert isinstance(train.dataset, CIFAR100)  # MMPretrain's loading path
    assert isinstance(test, CIFAR100) and len(test) == 200
    assert (len(train), len(held)) == (700, 100)
    assert np.intersect1d(train.indices, held.indices).size == 0
    assert np.array_equal(np.union1d(train.indices, held.indices),
                          np.arange(800))
    assert check_disjoint(train, held) == train.split_key()
    # metainfo / labels pass through, in split order
    assert len(held.CLASSES) == 100 and held.metainfo['classes'][3] == \
        CIFAR100.METAINFO['classes'][3]
    assert np.array_equal(held.get_gt_labels(), raw['train'][1][held.indices])
    assert np.array_equal(train.get_gt_labels(),
                          raw['train'][1][train.indices])
    # held-out items: the test pipeline on the raw image (no augmentation)
    for i in (0, 57):
        item = held[i]
        expected = raw['train'][0][held.indices[i]].transpose(2, 0, 1)
        assert torch.equal(item['inputs'], torch.from_numpy(expected.copy()))
        assert item['data_samples'].gt_label.item() == held.get_gt_labels()[i]
        assert item['data_samples'].sample_idx == i
    info = held.get_data_info(5)
    assert info['base_idx'] == held.indices[5] and info['sample_idx'] == 5
    # training items: augmented (crop/flip) at least sometimes
    raw0 = torch.from_numpy(raw['train'][0][train.indices[0]].transpose(
        2, 0, 1).copy())
    assert any(not torch.equal(train[0]['inputs'], raw0) for _ in range(20))


def test_cifar100_dataloaders_from_config(cifar):
    root, _ = cifar
    cfg = _cifar_cfg(root)
    cfg.heldout_dataloader['batch_size'] = 16
    loader = Runner.build_dataloader(cfg.heldout_dataloader, seed=0)
    assert len(loader) == 100 // 16  # drop_last
    batch = next(iter(loader))
    assert len(batch['inputs']) == 16
    assert batch['inputs'][0].shape == (3, 32, 32)
    assert check_disjoint(
        Runner.build_dataloader(cfg.train_dataloader, seed=0), loader)
    assert cfg.val_evaluator == dict(type='MultiExitAccuracy', topk=(1, 5))
    assert cfg.train_dataloader.batch_size == 128
    assert cfg.data_preprocessor.num_classes == 100


def test_cifar_x_has_exactly_x_images_per_class_and_is_nested(cifar):
    root, _ = cifar
    cfg = _cifar_cfg(root)
    held = _build(cfg, 'heldout_dataloader')
    full = _build(cfg, 'train_dataloader')
    subsets = {}
    for x in (2, 5):
        cfg.train_dataloader.dataset.per_class = x
        sub = _build(cfg, 'train_dataloader')
        counts = np.bincount(sub.get_gt_labels(), minlength=100)
        assert (counts == x).all() and len(sub) == 100 * x
        assert np.isin(sub.indices, full.indices).all()
        check_disjoint(sub, held)  # per_class does not change the key
        subsets[x] = sub.indices
    assert np.isin(subsets[2], subsets[5]).all()  # CIFAR(2) ⊂ CIFAR(5)


def test_splits_are_deterministic_per_seed(cifar):
    root, _ = cifar
    a = _build(_cifar_cfg(root, seed=3), 'heldout_dataloader')
    b = _build(_cifar_cfg(root, seed=3), 'heldout_dataloader')
    c = _build(_cifar_cfg(root, seed=4), 'heldout_dataloader')
    assert np.array_equal(a.indices, b.indices)
    assert a.split_key() == b.split_key() != c.split_key()
    assert not np.array_equal(a.indices, c.indices)
    t3 = _build(_cifar_cfg(root, seed=3, per_class=2), 'train_dataloader')
    t3b = _build(_cifar_cfg(root, seed=3, per_class=2), 'train_dataloader')
    t4 = _build(_cifar_cfg(root, seed=4, per_class=2), 'train_dataloader')
    assert np.array_equal(t3.indices, t3b.indices)
    assert not np.array_equal(t3.indices, t4.indices)


def test_check_disjoint_rejects_mismatched_splits(cifar, tmp_path):
    root, _ = cifar
    train = _build(_cifar_cfg(root, seed=0), 'train_dataloader')
    with pytest.raises(ValueError,
                       match='held-out split overlaps the '
                       'training split.*fix: use the same seed/heldout_size'):
        check_disjoint(train,
                       _build(_cifar_cfg(root, seed=1), 'heldout_dataloader'))
    with pytest.raises(ValueError, match='overlaps.*heldout_size'):
        check_disjoint(
            train,
            _build(_cifar_cfg(root, heldout_size=200), 'heldout_dataloader'))
    held = _build(_cifar_cfg(root), 'heldout_dataloader')
    with pytest.raises(ValueError, match="split='heldout', expected"):
        check_disjoint(held, held)
    with pytest.raises(ValueError, match='not a HeldOutSplit'):
        check_disjoint(train.dataset, held)
    other = tmp_path / 'other'
    write_cifar100(str(other), seed=1)
    with pytest.raises(ValueError, match='different base datasets'):
        check_disjoint(train, _build(_cifar_cfg(other), 'heldout_dataloader'))


def test_heldout_split_errors(cifar):
    root, _ = cifar
    with pytest.raises(ValueError,
                       match='heldout_size=800 must be smaller '
                       'than the training set.*fix: lower heldout_size'):
        _build(_cifar_cfg(root, heldout_size=800), 'train_dataloader')
    with pytest.raises(ValueError, match='heldout_size=5000 must be smaller'):
        _build(_cifar_cfg(root, heldout_size=5000), 'heldout_dataloader')
    # 800 images, 8 per class, 100 held out: some class keeps fewer than 8.
    with pytest.raises(ValueError,
                       match=r"per_class=8 is larger .* of class \d+ "
                       r"\('\w+'\): it has only \d .*fix: use per_class <="):
        _build(_cifar_cfg(root, per_class=8), 'train_dataloader')
    with pytest.raises(ValueError,
                       match="split='val' is not supported.*"
                       "fix: use split='train'"):
        _build(_cifar_cfg(root, split='val'), 'train_dataloader')
    with pytest.raises(ValueError,
                       match="per_class=3 applies to "
                       "split='train' only"):
        _build(_cifar_cfg(root, per_class=3), 'heldout_dataloader')
    with pytest.raises(ValueError, match='heldout_size=0 is empty'):
        _build(_cifar_cfg(root, heldout_size=0), 'heldout_dataloader')
    with pytest.raises(ValueError, match='heldout_size=-1'):
        _build(_cifar_cfg(root, heldout_size=-1), 'train_dataloader')
    with pytest.raises(ValueError, match='per_class=0'):
        _build(_cifar_cfg(root, per_class=0), 'train_dataloader')
    # heldout_size=0: the whole training set (or its CIFAR(X) subset)
    assert len(_build(_cifar_cfg(root, heldout_size=0),
                      'train_dataloader')) == 800
    sub = _build(_cifar_cfg(root, heldout_size=0, per_class=8),
                 'train_dataloader')
    assert len(sub) == 800


def test_cifar_missing_root_and_md5_errors_never_download(cifar, tmp_path):
    root, _ = cifar
    missing = tmp_path / 'nowhere'
    cfg = _cifar_cfg(missing)
    with pytest.raises(FileNotFoundError,
                       match=f'{missing}.*fix: download .*cifar-100-python'):
        _build(cfg, 'train_dataloader')
    with pytest.raises(FileNotFoundError, match='data_root'):
        _build(cfg, 'val_dataloader')
    # The tiny pickles fail the official md5 sums: clear error, no download.
    cfg = _cfg('cifar100_heldout.py', root, heldout_size=100)
    with pytest.raises(ValueError, match='md5.*verify_md5=False'):
        _build(cfg, 'train_dataloader')
    # MMPretrain's own class would try to download them here.
    with pytest.raises(AssertionError, match='download was attempted'):
        CIFAR100(data_root=str(root), split='train')


def test_lazy_init_and_instances(cifar):
    root, _ = cifar
    cfg = _cifar_cfg(root)
    ds_cfg = cfg.heldout_dataloader.dataset
    ds_cfg.dataset.lazy_init = True
    lazy = DATASETS.build(ds_cfg)
    assert not lazy._fully_initialized and not lazy.dataset._fully_initialized
    assert len(lazy) == 100 and lazy._fully_initialized
    # An instance with its own pipeline and no wrapper pipeline: base[i].
    base = DATASETS.build(
        dict(cfg.heldout_dataloader.dataset.dataset,
             lazy_init=False,
             pipeline=[dict(type='PackInputs')]))
    wrapped = HeldOutSplit(base, split='heldout', heldout_size=100)
    assert np.array_equal(wrapped.indices, lazy.indices)
    assert torch.equal(wrapped[3]['inputs'], lazy[3]['inputs'])
    assert 'Split: \theldout' in repr(wrapped)


def test_split_indices_stratified_and_random():
    labels = np.repeat(np.arange(4), [50, 30, 15, 5])
    tr, ho = split_indices(100, 20, seed=0, labels=labels, stratified=True)
    assert np.array_equal(np.bincount(labels[ho]), [10, 6, 3, 1])
    assert np.intersect1d(tr, ho).size == 0 and len(tr) + len(ho) == 100
    tr2, ho2 = split_indices(100, 20, seed=0)
    assert len(ho2) == 20 and np.array_equal(np.sort(np.r_[tr2, ho2]),
                                             np.arange(100))
    # per_class from the rest, named class in the error
    tr3, _ = split_indices(100,
                           20,
                           seed=0,
                           labels=labels,
                           stratified=True,
                           per_class=4)
    assert (np.bincount(labels[tr3]) == 4).all()
    with pytest.raises(ValueError, match=r"class 3 \('d'\): it has only 4"):
        split_indices(100,
                      20,
                      seed=0,
                      labels=labels,
                      stratified=True,
                      per_class=5,
                      class_names='abcd')
    # a class with no image at all cannot give X images
    with pytest.raises(ValueError, match='class 4'):
        split_indices(100, 0, labels=labels, per_class=1, num_classes=5)
    # the permutation is NumPy's frozen legacy stream
    assert np.array_equal(
        split_indices(10, 3, seed=0)[1],
        np.sort(np.random.RandomState(0).permutation(10)[:3]))


# -- Fashion-MNIST ---------------------------------------------------------
def test_fashion_mnist_gz_files_through_config(tmp_path):
    raw = write_fashion_mnist(str(tmp_path / 'gz'))
    cfg = _cfg('fashion_mnist_heldout.py', tmp_path / 'gz', heldout_size=10)
    train, held = _build(cfg,
                         'train_dataloader'), _build(cfg, 'heldout_dataloader')
    test = _build(cfg, 'test_dataloader')
    assert isinstance(train.dataset, FashionMNIST)
    assert (len(train), len(held), len(test)) == (50, 10, 20)
    check_disjoint(train, held)
    assert np.array_equal(test.get_gt_labels(), raw['t10k'][1])
    assert np.array_equal(held.get_gt_labels(), raw['train'][1][held.indices])
    info = held.get_data_info(0)
    assert info['img'].shape == (28, 28) and info['img'].dtype == np.uint8
    # test pipeline: 2 zero pixels per side, gray repeated into 3 channels
    x = held[0]['inputs']
    assert x.shape == (3, 32, 32) and x.dtype == torch.uint8
    img = torch.from_numpy(raw['train'][0][held.indices[0]])
    for ch in range(3):
        assert torch.equal(x[ch, 2:30, 2:30], img)
    assert x[:, :2].sum() == 0 and x[:, :, 30:].sum() == 0
    assert train[0]['inputs'].shape == (3, 32, 32)
    # extracted files are read the same way (MMPretrain's own reader)
    write_fashion_mnist(str(tmp_path / 'raw'), compressed=False)
    ext = LocalFashionMNIST(data_root=str(tmp_path / 'raw'), split='train')
    assert np.array_equal(ext.get_gt_labels(), raw['train'][1])
    assert np.array_equal(ext.get_data_info(7)['img'], raw['train'][0][7])


def test_fashion_mnist_missing_root_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError,
                       match=f"{tmp_path}.*apt-get install "
                       'dataset-fashion-mnist'):
        LocalFashionMNIST(data_root=str(tmp_path), split='test')
    cfg = _cfg('fashion_mnist_heldout.py', tmp_path / 'none')
    with pytest.raises(FileNotFoundError, match='fashion-mnist'):
        _build(cfg, 'heldout_dataloader')


@pytest.mark.skipif(
    not osp.isfile(osp.join(DEBIAN_FMNIST, 'train-images-idx3-ubyte.gz')),
    reason='Debian package dataset-fashion-mnist is not installed '
    '(apt-get install dataset-fashion-mnist)')
def test_fashion_mnist_debian_files_by_config_alone():
    cfg = Config.fromfile(osp.join(CFG_DIR, 'fashion_mnist_heldout.py'))
    assert cfg.train_dataloader.dataset.dataset.data_root == DEBIAN_FMNIST
    train = _build(cfg, 'train_dataloader')
    held = _build(cfg, 'heldout_dataloader')
    test = _build(cfg, 'val_dataloader')
    assert (len(train), len(held), len(test)) == (55000, 5000, 10000)
    check_disjoint(train, held)
    counts = np.bincount(test.get_gt_labels())
    assert (counts == 1000).all()  # the real t10k split, not train
    assert held[0]['inputs'].shape == (3, 32, 32)
    assert len(train.CLASSES) == 10 and train.CLASSES[0] == 'T-shirt/top'


# -- ImageNet --------------------------------------------------------------
def test_imagenet_folder_and_annotation_file(tmp_path):
    root = tmp_path / 'imagenet'
    write_imagenet(str(root))
    classes = dict(metainfo=dict(classes=('n00', 'n01', 'n02')))
    cfg = _cfg('imagenet_heldout.py', root, classes, heldout_size=6)
    train, held = _build(cfg,
                         'train_dataloader'), _build(cfg, 'heldout_dataloader')
    assert isinstance(train.dataset, ImageNet)
    assert train.dataset.ann_file.endswith('meta/train.txt')
    assert (len(train), len(held)) == (18, 6)
    check_disjoint(train, held)
    assert held[0]['inputs'].shape == (3, 224, 224)
    assert train[0]['inputs'].shape == (3, 224, 224)
    assert len(_build(cfg, 'val_dataloader')) == 6
    # ImageNet(X)
    cfg.train_dataloader.dataset.per_class = 4
    sub = _build(cfg, 'train_dataloader')
    assert (np.bincount(sub.get_gt_labels()) == 4).all()
    check_disjoint(sub, held)
    # folder format (no annotation file): same labels from the folders
    import os
    os.remove(root / 'meta' / 'train.txt')
    folder = _build(cfg, 'heldout_dataloader')
    assert folder.dataset.ann_file == ''
    assert np.array_equal(folder.get_gt_labels(), held.get_gt_labels())
    # missing data root
    cfg = _cfg('imagenet_heldout.py', tmp_path / 'missing', classes)
    with pytest.raises(FileNotFoundError,
                       match=f"{tmp_path / 'missing'}.*fix: put ILSVRC"):
        _build(cfg, 'train_dataloader')


def test_transforms():
    r = CenterPad(size=(5, 6))(dict(img=np.ones((2, 3), np.uint8)))
    assert r['img'].shape == (5, 6)
    assert np.array_equal(np.argwhere(r['img'])[[0, -1]], [[1, 1], [2, 3]])
    assert CenterPad(4)(dict(img=np.ones((6, 6))))['img'].shape == (6, 6)
    g = GrayToRGB()(dict(img=np.arange(6, dtype=np.uint8).reshape(2, 3, 1)))
    assert g['img'].shape == (2, 3, 3) and (g['img'][..., 2]
                                            == g['img'][..., 0]).all()


# -- a test split carved from the training set (CIFAR-10 JPEG folder) -------
def test_partition_three_way_stratified_and_two_way_unchanged():
    labels = np.repeat(np.arange(4), [50, 30, 15, 5])
    part = partition_indices(100, 20, seed=0, labels=labels, stratified=True,
                             test_size=40)
    # test: 40 × the class shares of the 80 left after holding out 20
    assert np.array_equal(np.bincount(labels[part.test]), [20, 12, 6, 2])
    assert np.array_equal(np.bincount(labels[part.heldout]), [10, 6, 3, 1])
    everything = np.concatenate([part.train, part.heldout, part.test])
    assert np.array_equal(np.sort(everything), np.arange(100))  # disjoint
    # without a test split the partition is exactly the two-way one
    tr, ho = split_indices(100, 20, seed=0, labels=labels, stratified=True)
    two = partition_indices(100, 20, seed=0, labels=labels, stratified=True)
    assert np.array_equal(two.train, tr) and np.array_equal(two.heldout, ho)
    assert two.test.size == 0
    # CIFAR(X) comes from what is left after both carve-outs
    sub = partition_indices(100, 20, seed=0, labels=labels, stratified=True,
                            test_size=40, per_class=2)
    assert (np.bincount(labels[sub.train]) == 2).all()
    assert np.intersect1d(sub.train, part.test).size == 0
    with pytest.raises(ValueError, match=r'heldout_size=20 \+ test_size=80 '
                       'must be smaller'):
        partition_indices(100, 20, labels=labels, test_size=80)
    with pytest.raises(ValueError, match='test_size=-1 must be an int'):
        partition_indices(100, 20, labels=labels, test_size=-1)


def test_cifar10_jpg_config_carves_test_heldout_and_train(tmp_path):
    root = write_cifar10_jpg(str(tmp_path / 'c10'), per_class=12)
    cfg = Config.fromfile(osp.join(CFG_DIR, 'cifar10_jpg_splits.py'))
    for key in SPLIT_KEYS + ('val_dataloader', ):
        ds = cfg[key]['dataset']
        ds['dataset']['data_root'] = root
        ds.update(heldout_size=20, test_size=40)
    cfg.train_dataloader.dataset.per_class = 3
    train, held, test = (_build(cfg, k) for k in
                         SPLIT_KEYS + ('val_dataloader', ))
    assert (len(train), len(held), len(test)) == (30, 20, 40)
    for split in (train, held, test):  # stratified: equal per class
        counts = np.bincount(split.get_gt_labels(), minlength=10)
        assert (counts == counts[0]).all()
    assert check_disjoint(train, held) == test.split_key()
    assert np.intersect1d(test.indices, train.indices).size == 0
    assert np.intersect1d(test.indices, held.indices).size == 0
    assert train.CLASSES[0] == 'airplane' and train.CLASSES[9] == 'truck'
    # the real loading path: JPEG decoded, the test pipeline leaves 32×32
    item = test[0]
    assert item['inputs'].shape == (3, 32, 32)
    assert int(item['data_samples'].gt_label) == test.get_gt_labels()[0]
    # a test split needs test_size in every split of the partition
    with pytest.raises(ValueError, match="split='test' with test_size=0"):
        HeldOutSplit(cfg.val_dataloader.dataset.dataset, split='test',
                     heldout_size=20)
