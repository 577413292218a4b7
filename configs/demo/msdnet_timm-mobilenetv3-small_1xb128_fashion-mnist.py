# Demo: timm's MobileNetV3-Small (width 1.0) through MMPretrain's TIMMBackbone
# on Fashion-MNIST, 4 exits, Σ_k CE_k (the MSDNet scheme). The baseline of
# hdkd_timm-mobilenetv3-small_1xb128_fashion-mnist.py.
#   python tools/train.py configs/demo/msdnet_timm-mobilenetv3-small_1xb128_fashion-mnist.py
# Model and data: _base_/timm-mobilenetv3-small_fashion-mnist.py.
_base_ = [
    './_base_/timm-mobilenetv3-small_fashion-mnist.py',
    '../_base_/schedules/demo_sgd_3e.py',
]
