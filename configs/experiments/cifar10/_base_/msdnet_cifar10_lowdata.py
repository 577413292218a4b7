# The CIFAR-10 low-data regime of suite configs/experiments/cifar10_lowdata.yaml
# (issue 16, docs/results.md "Suite (c10)"), fixed in advance (nothing tuned
# on the test split):
#
# * data: the CIFAR-10 JPEG folder of configs/_base_/datasets/
#   cifar10_jpg_splits.py: one seeded stratified partition of the 50,000
#   training images into test 10,000 / held-out 5,000 / training pool 35,000;
#   CIFAR-10(X) = X images per class of the pool (split seed 0, the same
#   images for every run and seed). Light augmentation (pad-4 crop, flip).
# * model and X, chosen together on the held-out split before any test
#   number existed (configs/experiments/selection/cifar10_regime.yaml, round
#   2: candidate lingrow6-x1000, held-out room 8.54 >= 8 points): a 6-block
#   lin_grow MSDNet (block k has k layers; exit costs 1.82 -> 31.1 MFLOPs,
#   17x) on CIFAR-10(1000) = 10,000 training images.
# * schedule: SGD momentum 0.9 (Nesterov), weight decay 1e-4, batch 64, 25
#   epochs (3,925 iterations), lr 0.1 with a 3-epoch linear warm-up, ÷10 at
#   epochs 12 and 19 (about 50 % and 75 %: the paper's 150/225 of 300, as
#   the Fashion-MNIST suites). Validation only at the end (the suite
#   evaluates every exit afterwards).
_base_ = [
    '../../../_base_/models/msdnet_cifar.py',
    '../../../_base_/datasets/cifar10_jpg_splits.py',
    '../../../_base_/default_runtime.py',
]

per_class = 1000
max_epochs = 25

model = dict(
    # NHWC layout: the same training, faster for this model on one CPU
    # thread (bench/memory_format.py; measured in docs/results.md, "Suite
    # (c10)"); rounding-level differences only, so not part of a run's
    # identity (hdkd_mm/experiments/records.py, EXECUTION_KEYS)
    channels_last=True,
    backbone=dict(nBlocks=6, stepmode='lin_grow', step=1, base=1, nChannels=8,
                  growthRate=4),
    head=dict(num_classes=10, inter_channels=32))

train_dataloader = dict(batch_size=64, dataset=dict(per_class=per_class))
heldout_dataloader = dict(batch_size=32)  # one batch per γ step (HDKD)

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4,
                   nesterov=True))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=3,
         convert_to_iter_based=True),
    # as selected (lingrow6-x1000): 12 and 19 of 25 epochs
    dict(type='MultiStepLR', by_epoch=True, milestones=[12, 19], gamma=0.1),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs,
                 val_interval=max_epochs)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=64)

default_hooks = dict(
    logger=dict(interval=39),
    # every 5 epochs (and the last): what an interrupted run resumes from
    checkpoint=dict(interval=5, max_keep_ckpts=1))
