# CIFAR-10 from a folder of JPEG images, `train/<class>/*.jpg` (the 50,000
# training images of ../shared/data/cifar10/cifar10_train_jpg.tar.xz, JPEG
# quality-75 re-encodings; `tar -xJf cifar10_train_jpg.tar.xz -C DIR`, then
# data_root=DIR). Only training images exist there, so ONE seeded partition
# of them gives every split the experiments use (HeldOutSplit, seed 0):
#
#   test     10,000 images, stratified (1,000 per class)   val/test loaders
#   heldout   5,000 images, stratified (500 per class)     γ steps, thresholds
#   train    the other 35,000 (3,500 per class); CIFAR-10(X) takes the
#            first X per class of them (nested across X)
#
# All three come from the same (seed, heldout_size, test_size, stratified,
# data root), so they are disjoint by construction, and the training loop
# checks it. Numbers are comparable between schemes trained on these files,
# not with published CIFAR-10 results (lossy re-encodings, another test set).
#
# Overrides (dicts merge into these): X images per class:
#   train_dataloader = dict(dataset=dict(per_class=500))
# data root (the folder holding train/), on the command line:
#   --cfg-options train_dataloader.dataset.dataset.data_root=DIR \
#     heldout_dataloader.dataset.dataset.data_root=DIR \
#     val_dataloader.dataset.dataset.data_root=DIR \
#     test_dataloader.dataset.dataset.data_root=DIR
# Nothing is downloaded or decoded ahead: images are read as the loaders ask.
dataset_type = 'CustomDataset'  # MMPretrain's class-folder dataset
data_root = 'data/cifar10_jpg'  # holds train/<class>/NNNN.jpg
split_cfg = dict(heldout_size=5000, test_size=10000, stratified=True, seed=0)

data_preprocessor = dict(
    num_classes=10,
    # RGB mean/std of the CIFAR-10 training set (as MMPretrain's configs)
    mean=[125.307, 122.961, 113.8575],
    std=[51.5865, 50.847, 51.255],
    to_rgb=True)  # LoadImageFromFile decodes to BGR

# Standard augmentation (He et al. 2016): 4-pixel zero padding, random 32×32
# crop, horizontal flip.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
# Every image is 32×32: CenterCrop(32) changes no pixel and states the input
# size, which get_flops.py and the early-exit tools read from the config.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='CenterCrop', crop_size=32),
    dict(type='PackInputs'),
]

# Every image of the folder, without a pipeline: each split applies its own.
cifar10_images = dict(
    type=dataset_type, data_root=data_root, data_prefix='train',
    with_label=True, pipeline=[])

train_dataloader = dict(
    batch_size=64,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        type='HeldOutSplit',
        dataset=cifar10_images,
        split='train',
        per_class=None,  # CIFAR-10(X): X images per class
        pipeline=train_pipeline,
        **split_cfg),
    sampler=dict(type='DefaultSampler', shuffle=True),
)

# The held-out split (test pipeline, unaugmented); HDKD draws one batch of it
# per training iteration, hence shuffle and drop_last.
heldout_dataloader = dict(
    batch_size=32,
    num_workers=0,
    persistent_workers=False,
    drop_last=True,
    dataset=dict(
        type='HeldOutSplit',
        dataset=cifar10_images,
        split='heldout',
        pipeline=test_pipeline,
        **split_cfg),
    sampler=dict(type='DefaultSampler', shuffle=True),
)

val_dataloader = dict(
    batch_size=256,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        type='HeldOutSplit',
        dataset=cifar10_images,
        split='test',
        pipeline=test_pipeline,
        **split_cfg),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='MultiExitAccuracy', topk=(1, 5))

test_dataloader = val_dataloader
test_evaluator = val_evaluator
