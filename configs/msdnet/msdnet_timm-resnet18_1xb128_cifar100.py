# MSDNet scheme (Σ_k CE_k) on timm's ResNet-18 (TIMMBackbone, features_only,
# exits on layer1..layer4), CIFAR-100 with the MSDNet data and schedule.
#   python tools/train.py configs/msdnet/msdnet_timm-resnet18_1xb128_cifar100.py
_base_ = [
    '../_base_/models/timm_resnet18_cifar.py',
    '../_base_/datasets/cifar100_heldout.py',
    '../_base_/schedules/cifar_sgd_300e.py',
    '../_base_/default_runtime.py',
]
