# MSDNet scheme (Σ_k CE_k) on timm's MobileNetV3-Large (TIMMBackbone,
# features_only, 4 exits), CIFAR-100 with the MSDNet data and schedule
# (SGD lr 0.1 as for the other CNNs; wd 1e-4).
#   python tools/train.py configs/msdnet/msdnet_timm-mobilenetv3_1xb128_cifar100.py
_base_ = [
    '../_base_/models/timm_mobilenetv3_cifar.py',
    '../_base_/datasets/cifar100_heldout.py',
    '../_base_/schedules/cifar_sgd_300e.py',
    '../_base_/default_runtime.py',
]
