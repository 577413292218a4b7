# The demo model, data and runtime without a schedule:
# msdnet_resnet18-w16_1xb128_fashion-mnist.py adds
# schedules/demo_sgd_3e.py, the harmonized demos demo_sgd_3e_bilevel.py.
# Demo: a 4-exit ResNet-18 on Fashion-MNIST, Σ_k CE_k (the MSDNet scheme), on
# one CPU thread in under 4 minutes (HDKD: under 8). The baseline of
# hdkd_resnet18-w16_1xb128_fashion-mnist.py.
# The CIFAR ResNet-18 of configs/_base_/models/resnet18_cifar.py (same depth,
# an exit after each of the 4 stages, generic pool + Linear heads), made
# small: stage widths 16/32/64/128 instead of 64..512 (stem 16; 35 MFLOPs
# and 0.70 M params at the last exit, 1/16 of the full model), trained on
# 2,000 images per class (20,000 of the 55,000 non-held-out images) for
# 3 epochs; validated on the full 10,000-image test split.
_base_ = [
    '../../_base_/models/resnet18_cifar.py',
    '../../_base_/datasets/fashion_mnist_heldout.py',
    '../../_base_/default_runtime.py',
]

model = dict(
    backbone=dict(stem_channels=16, base_channels=16),
    head=dict(num_classes=10))
train_dataloader = dict(dataset=dict(per_class=2000))

default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=1, max_keep_ckpts=1))
