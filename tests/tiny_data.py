"""Tiny data sets written in the real on-disk formats, shared by the tests."""
import gzip
import os
import os.path as osp
import struct

import numpy as np


def idx_bytes(arr: np.ndarray) -> bytes:
    """An idx file: magic (0, 0, 0x08 = uint8, ndim), big-endian dims, data."""
    head = struct.pack('>BBBB', 0, 0, 8, arr.ndim)
    head += b''.join(struct.pack('>I', d) for d in arr.shape)
    return head + arr.astype(np.uint8).tobytes()


def write_fashion_mnist(root, per_class=(6, 2), compressed=True, seed=0,
                        learnable=False):
    """Write Fashion-MNIST-format idx files (train/t10k) under ``root``.

    With ``learnable=True`` each class gets its own bright square on a noisy
    background, so that a few iterations of training can fit it.
    Returns ``{'train': (images, labels), 't10k': (images, labels)}``.
    """
    os.makedirs(root, exist_ok=True)
    rng = np.random.RandomState(seed)
    out = {}
    for prefix, per in zip(('train', 't10k'), per_class):
        labels = np.repeat(np.arange(10), per)
        rng.shuffle(labels)
        imgs = rng.randint(1, 256, (len(labels), 28, 28)).astype(np.uint8)
        if learnable:
            imgs //= 4
            for img, label in zip(imgs, labels):
                r, c = divmod(int(label), 4)
                img[4 + 6 * r:9 + 6 * r, 4 + 6 * c:9 + 6 * c] = 255
        for kind, arr in (('images-idx3', imgs), ('labels-idx1', labels)):
            name = f'{prefix}-{kind}-ubyte'
            payload = idx_bytes(arr)
            if compressed:
                with gzip.open(osp.join(root, name + '.gz'), 'wb') as f:
                    f.write(payload)
            else:
                with open(osp.join(root, name), 'wb') as f:
                    f.write(payload)
        out[prefix] = (imgs, labels)
    return out


def fashion_mnist_overrides(root, heldout_size=20, batch_size=8):
    """``--cfg-options`` that point a fashion_mnist_heldout-based config at
    ``root`` with a small held-out split and small batches."""
    opts = {}
    for key in ('train_dataloader', 'heldout_dataloader'):
        opts[f'{key}.dataset.dataset.data_root'] = root
        opts[f'{key}.dataset.heldout_size'] = heldout_size
        opts[f'{key}.batch_size'] = batch_size
    for key in ('val_dataloader', 'test_dataloader'):
        opts[f'{key}.dataset.data_root'] = root
        opts[f'{key}.batch_size'] = batch_size
    return opts


CIFAR10_CLASSES = ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog',
                   'frog', 'horse', 'ship', 'truck')


def write_cifar10_jpg(root, per_class=12, seed=0):
    """The layout of the CIFAR-10 JPEG archive of the experiment suites
    (``train/<class>/NNNN.jpg``, 32×32 RGB JPEGs), ``per_class`` random
    images per class; returns the folder to use as ``data_root``."""
    import cv2
    rng = np.random.RandomState(seed)
    for name in CIFAR10_CLASSES:
        folder = os.path.join(root, 'train', name)
        os.makedirs(folder, exist_ok=True)
        for i in range(per_class):
            img = rng.randint(0, 256, (32, 32, 3), dtype=np.uint8)
            cv2.imwrite(os.path.join(folder, f'{i:04d}.jpg'), img,
                        [cv2.IMWRITE_JPEG_QUALITY, 75])
    return str(root)


def write_cifar100(root, n_train_per_class=8, n_test_per_class=2, seed=0,
                   classes_present=100):
    """``cifar-100-python/{train,test,meta}`` under ``root`` as in the
    official tarball (random 32×32 images; each of the first
    ``classes_present`` classes ``n_train_per_class`` / ``n_test_per_class``
    times). These pickles fail the official md5 sums: read them with
    ``verify_md5=False``. Returns ``{'train': (images NHWC, labels),
    'test': (...)}``."""
    import pickle
    rng = np.random.RandomState(seed)
    folder = osp.join(root, 'cifar-100-python')
    os.makedirs(folder, exist_ok=True)
    out = {}
    for name, per in (('train', n_train_per_class), ('test',
                                                     n_test_per_class)):
        labels = np.repeat(np.arange(classes_present), per)
        rng.shuffle(labels)
        data = rng.randint(0, 256, (len(labels), 3072), dtype=np.uint8)
        entry = {
            'filenames': [f'img_{i}.png' for i in range(len(labels))],
            'batch_label': f'{name} batch',
            'fine_labels': labels.tolist(),
            'coarse_labels': (labels // 5).tolist(),
            'data': data,
        }
        with open(osp.join(folder, name), 'wb') as f:
            pickle.dump(entry, f, protocol=2)
        out[name] = (data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels)
    meta = {
        'fine_label_names': [f'class{i}' for i in range(100)],
        'coarse_label_names': [f'super{i}' for i in range(20)],
    }
    with open(osp.join(folder, 'meta'), 'wb') as f:
        pickle.dump(meta, f, protocol=2)
    return out


def write_imagenet(root, n_classes=3, per_class=8, seed=0, val_per_class=2):
    """ImageNet's layout under ``root``: ``train/<wnid>/*.JPEG|png``,
    ``val/<wnid>/...`` and ``meta/train.txt``, with ``n_classes`` classes
    ``n00, n01, ...`` (a data set of that many classes: give the configs
    ``metainfo=dict(classes=...)``) of small random images."""
    from PIL import Image
    rng = np.random.RandomState(seed)
    lines = []
    for split, per in (('train', per_class), ('val', val_per_class)):
        for c in range(n_classes):
            d = osp.join(root, split, f'n0{c}')
            os.makedirs(d, exist_ok=True)
            for i in range(per):
                ext = 'JPEG' if i % 2 == 0 else 'png'
                img = rng.randint(0, 256, (36 + c, 40, 3), dtype=np.uint8)
                Image.fromarray(img).save(osp.join(d, f'img{i}.{ext}'))
                if split == 'train':
                    lines.append(f'n0{c}/img{i}.{ext} {c}')
    os.makedirs(osp.join(root, 'meta'), exist_ok=True)
    with open(osp.join(root, 'meta', 'train.txt'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
