# The CIFAR-10 low-data regime of suite configs/experiments/cifar10_lowdata.yaml
# (issue 16, docs/results.md "Suite (c10)"), fixed in advance (nothing tuned
# on the test split):
#
# * data: the CIFAR-10 JPEG folder of configs/_base_/datasets/
#   cifar10_jpg_splits.py: one seeded stratified partition of the 50,000
#   training images into test 10,000 / held-out 5,000 / training pool 35,000;
#   CIFAR-10(X) = X images per class of the pool (split seed 0, the same
#   images for every run and seed). Light augmentation (pad-4 crop, flip).
# * model: an MSDNet whose first exit is far cheaper than its last (the room
#   that distillation needs), chosen with X on the held-out split by the
#   selection described in docs/results.md; `msdnet_variant` below.
# * schedule: SGD momentum 0.9 (Nesterov), weight decay 1e-4, batch 64, lr
#   0.1 with a 5-epoch linear warm-up, ÷10 at 50 % and 75 % of the epochs
#   (the paper's 150/225 of 300, as the Fashion-MNIST suites). Validation
#   only at the end (the suite evaluates every exit afterwards).
_base_ = [
    '../../../_base_/models/msdnet_cifar.py',
    '../../../_base_/datasets/cifar10_jpg_splits.py',
    '../../../_base_/default_runtime.py',
]

per_class = 500
max_epochs = 50

model = dict(
    backbone=dict(nBlocks=6, stepmode='lin_grow', step=1, base=1, nChannels=8,
                  growthRate=4),
    head=dict(num_classes=10, inter_channels=32))

train_dataloader = dict(batch_size=64, dataset=dict(per_class=per_class))
heldout_dataloader = dict(batch_size=32)  # one batch per γ step (HDKD)

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4,
                   nesterov=True))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='MultiStepLR', by_epoch=True,
         milestones=[max_epochs // 2, max_epochs * 3 // 4], gamma=0.1),
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
