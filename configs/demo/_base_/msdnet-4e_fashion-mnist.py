# The demo model, data and runtime without a schedule:
# msdnet_msdnet-4e_1xb128_fashion-mnist.py adds
# schedules/demo_sgd_3e.py, the harmonized demos demo_sgd_3e_bilevel.py.
# The CIFAR MSDNet, made small: 4 blocks of one layer, base width 8, growth 4,
# exit classifiers with 32 channels (5.45 MFLOPs and 0.13 M params in all).
_base_ = [
    '../../_base_/models/msdnet_cifar.py',
    '../../_base_/datasets/fashion_mnist_heldout.py',
    '../../_base_/default_runtime.py',
]

model = dict(
    backbone=dict(nBlocks=4, stepmode='even', nChannels=8, growthRate=4),
    head=dict(num_classes=10, inter_channels=32))

default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(interval=1, max_keep_ckpts=1))
