# Demo: a 4-exit ResNet-18 on Fashion-MNIST, Σ_k CE_k (the MSDNet scheme), on
# one CPU thread in under 4 minutes (HDKD: under 8). The baseline of
# hdkd_resnet18-w16_1xb128_fashion-mnist.py.
#   python tools/train.py configs/demo/msdnet_resnet18-w16_1xb128_fashion-mnist.py
# Model and data: _base_/resnet18-w16_fashion-mnist.py.
_base_ = [
    './_base_/resnet18-w16_fashion-mnist.py',
    '../_base_/schedules/demo_sgd_3e.py',
]
