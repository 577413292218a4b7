# Demo: a 4-exit MSDNet on Fashion-MNIST (real data, runs on 2 CPU cores in
# under 10 minutes). Scheme: MSDNet (Σ_k CE_k).
#   python tools/train.py configs/demo/msdnet_fashion_mnist.py
# The CIFAR MSDNet, made small: 4 blocks of one layer, base width 8, growth 4,
# exit classifiers with 32 channels (5.45 MFLOPs and 0.13 M params in all).
_base_ = [
    '../_base_/models/msdnet_cifar.py',
    '../_base_/datasets/fashion_mnist_heldout.py',
    '../_base_/schedules/demo_sgd_3e.py',
    '../_base_/default_runtime.py',
]

model = dict(
    backbone=dict(nBlocks=4, stepmode='even', nChannels=8, growthRate=4),
    head=dict(num_classes=10, inter_channels=32))

default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(interval=1, max_keep_ckpts=1))
