# ImageNet (ILSVRC-2012) for HDKD (paper, Experiments/Datasets): 50,000 of
# the 1.28 M training images are held out (threshold search for budgeted
# classification and HDKD's γ updates); the model trains on the rest (or on X
# per class, ImageNet(X)); val/test = the 50,000 validation images.
# Augmentation as He et al. 2016 / MSDNet: RandomResizedCrop 224 + flip;
# test: short edge 256, center crop 224.
#
# Batch: the paper's 1024 in total = 128 per GPU × 8 GPUs. On another number
# of GPUs keep 1024 (batch_size=1024 // num_gpus) or use
# `tools/train.py --auto-scale-lr` (base_batch_size=1024 in the schedule).
#
# Overrides in a child config (dicts merge into these):
#   ImageNet(X), e.g. ImageNet(300):
#     train_dataloader = dict(dataset=dict(per_class=300))
#   held-out size / seed: change BOTH splits (check_disjoint enforces it):
#     train_dataloader = dict(dataset=dict(heldout_size=10000, seed=1))
#     heldout_dataloader = dict(dataset=dict(heldout_size=10000, seed=1))
#   data root: train_dataloader.dataset.dataset.data_root,
#     heldout_dataloader.dataset.dataset.data_root,
#     val_dataloader.dataset.data_root, test_dataloader.dataset.data_root
# Layout (MMPretrain's): data_root/train/<wnid>/*.JPEG, data_root/val/...,
# or with data_root/meta/{train,val}.txt annotation files (used if present).
# MMPretrain's ImageNet with clear errors for missing paths
dataset_type = 'LocalImageNet'
data_root = 'data/imagenet'

data_preprocessor = dict(
    num_classes=1000,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)  # images are decoded as BGR

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]

imagenet_train = dict(
    type=dataset_type, data_root=data_root, split='train', pipeline=[])

train_dataloader = dict(
    batch_size=128,  # per GPU; × 8 GPUs = 1024
    num_workers=8,
    persistent_workers=True,
    dataset=dict(
        type='HeldOutSplit',
        dataset=imagenet_train,
        split='train',
        heldout_size=50000,
        per_class=None,  # ImageNet(X): X images per class
        seed=0,
        pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
)

# Held-out split, unaugmented (test pipeline); one batch per HDKD iteration.
heldout_dataloader = dict(
    batch_size=128,
    num_workers=8,
    persistent_workers=True,
    drop_last=True,
    dataset=dict(
        type='HeldOutSplit',
        dataset=imagenet_train,
        split='heldout',
        heldout_size=50000,
        seed=0,
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
)

val_dataloader = dict(
    batch_size=128,
    num_workers=8,
    persistent_workers=True,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='val',
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='MultiExitAccuracy', topk=(1, 5))

test_dataloader = val_dataloader
test_evaluator = val_evaluator
