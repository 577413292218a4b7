# Fashion-MNIST (Zalando SE, MIT licence) from Debian's dataset-fashion-mnist
# package: `apt-get install dataset-fashion-mnist` puts the four idx .gz files
# in /usr/share/datasets/fashion-mnist (read directly, nothing is extracted or
# downloaded). 5,000 of the 60,000 training images are held out as in the
# CIFAR-100 setup; val/test = the 10,000 t10k images. 10 classes.
#
# 28×28 gray → 32×32, 3 channels: CenterPad adds 2 background pixels per side
# (the CIFAR geometry, so CIFAR MSDNet configs and their FLOPs apply) and
# GrayToRGB repeats the gray channel, so the 3-channel CIFAR stem is used
# unchanged. Light augmentation: RandomCrop 32 with 4-pixel padding + flip.
#
# Overrides in a child config (dicts merge into these):
#   X images per class:  train_dataloader = dict(dataset=dict(per_class=500))
#   held-out size / seed: change BOTH splits (check_disjoint enforces it):
#     train_dataloader = dict(dataset=dict(heldout_size=1000, seed=1))
#     heldout_dataloader = dict(dataset=dict(heldout_size=1000, seed=1))
#   data root (a folder with the .gz or extracted files):
#     train_dataloader.dataset.dataset.data_root,
#     heldout_dataloader.dataset.dataset.data_root,
#     val_dataloader.dataset.data_root, test_dataloader.dataset.data_root
# num_workers=0: on the 2-core CPU demo machine a batch of 128 loads in about
# 12 ms in the main process against 34 ms through 2 workers (which also take
# the cores from the model: 82 vs 127 ms per batch with a small conv); with 0
# workers persistent_workers must be False (PyTorch refuses True).
dataset_type = 'LocalFashionMNIST'
data_root = '/usr/share/datasets/fashion-mnist'

data_preprocessor = dict(
    num_classes=10,
    # mean/std of the 60,000 training images (gray, repeated per channel)
    mean=[72.94, 72.94, 72.94],
    std=[90.02, 90.02, 90.02],
    to_rgb=False)

train_pipeline = [
    dict(type='CenterPad', size=32),
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='GrayToRGB'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='CenterPad', size=32),
    dict(type='GrayToRGB'),
    dict(type='PackInputs'),
]

fashion_mnist_train = dict(
    type=dataset_type, data_root=data_root, split='train', pipeline=[])

train_dataloader = dict(
    batch_size=128,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        type='HeldOutSplit',
        dataset=fashion_mnist_train,
        split='train',
        heldout_size=5000,
        per_class=None,  # X images per class
        seed=0,
        pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
)

# Held-out split, unaugmented (test pipeline); one batch per HDKD iteration.
heldout_dataloader = dict(
    batch_size=128,
    num_workers=0,
    persistent_workers=False,
    drop_last=True,
    dataset=dict(
        type='HeldOutSplit',
        dataset=fashion_mnist_train,
        split='heldout',
        heldout_size=5000,
        seed=0,
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
)

val_dataloader = dict(
    batch_size=256,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='test',
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='MultiExitAccuracy', topk=(1, 5))

test_dataloader = val_dataloader
test_evaluator = val_evaluator
