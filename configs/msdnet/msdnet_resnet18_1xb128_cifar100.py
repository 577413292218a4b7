# MSDNet scheme (Σ_k CE_k) on a 4-exit ResNet-18 (MMPretrain's ResNet_CIFAR,
# one exit after each stage): the baseline of configs/hdkd/hdkd_resnet18_1xb128_cifar100.py
# with the data and schedule of the MSDNet configs (5,000 images held out,
# SGD momentum 0.9, wd 1e-4, batch 128, 300 epochs, lr 0.1 ÷10 at 150/225).
#   python tools/train.py configs/msdnet/msdnet_resnet18_1xb128_cifar100.py
# DBT / HDKD on the same model: configs/{dbt,hdkd}/{dbt,hdkd}_resnet18_1xb128_cifar100.py.
_base_ = [
    '../_base_/models/resnet18_cifar.py',
    '../_base_/datasets/cifar100_heldout.py',
    '../_base_/schedules/cifar_sgd_300e.py',
    '../_base_/default_runtime.py',
]
