# The Fashion-MNIST low-data regime of the experiment suites
# (configs/experiments/fashion_mnist_*.yaml, docs/results.md), fixed in
# advance (no tuning on the test split; nothing tuned on the held-out split
# either):
#
# * data: Fashion-MNIST(100): 100 training images per class (1,000 in all),
#   drawn once from the 55,000 non-held-out images (split seed 0, the same
#   subset for every run and every seed); 5,000 held-out images (HDKD's γ
#   steps, the budgeted-classification thresholds); test = the 10,000 t10k
#   images. Augmentation: the light one of the data config (pad-4 crop,
#   flip).
# * model: a 6-exit MSDNet with a real depth gap between exits: block 1 has
#   one layer, blocks 2-6 two layers each (11 layers; exit costs 1.82 ...
#   14.10 MFLOPs, 0.30 M parameters). The calibration model of issue 6 (4
#   exits of one layer, 187 k parameters, 20 epochs) under-fitted 1,000
#   images and its exits were 1-3 points apart.
# * schedule: the paper's recipe scaled to 100 epochs: SGD momentum 0.9
#   (Nesterov), weight decay 1e-4 (the paper's), batch 64 (16 iterations per
#   epoch, 1,600 in all), lr 0.1 with a 5-epoch linear warm-up, ÷10 after
#   epochs 50 and 75 (the paper: 150 and 225 of 300). Validation only at the
#   end (the suites evaluate every exit afterwards anyway).
_base_ = [
    '../../../_base_/models/msdnet_cifar.py',
    '../../../_base_/datasets/fashion_mnist_heldout.py',
    '../../../_base_/default_runtime.py',
]

max_epochs = 100

model = dict(
    backbone=dict(nBlocks=6, stepmode='even', step=2, base=1, nChannels=8,
                  growthRate=4),
    head=dict(num_classes=10, inter_channels=32))

train_dataloader = dict(batch_size=64, dataset=dict(per_class=100))
heldout_dataloader = dict(batch_size=32)  # one batch per γ step (HDKD)

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4,
                   nesterov=True))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='MultiStepLR', by_epoch=True, milestones=[50, 75], gamma=0.1),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs,
                 val_interval=max_epochs)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=64)

default_hooks = dict(
    logger=dict(interval=16),
    # every 5 epochs (and the last): what an interrupted run resumes from
    checkpoint=dict(interval=5, max_keep_ckpts=1))
