# MSDNet scheme (Σ_k CE_k) on CIFAR-100: the paper's 36-layer, 8-exit model,
# 5,000 training images held out, SGD (momentum 0.9, wd 1e-4), batch 128,
# 300 epochs, lr 0.1 ÷10 at 150 and 225, standard augmentation.
#   python tools/train.py configs/msdnet/msdnet_msdnet-8e_1xb128_cifar100.py
# CIFAR(X) (X images per class of the remaining 45,000):
#   --cfg-options train_dataloader.dataset.per_class=150
_base_ = [
    '../_base_/models/msdnet_cifar.py',
    '../_base_/datasets/cifar100_heldout.py',
    '../_base_/schedules/cifar_sgd_300e.py',
    '../_base_/default_runtime.py',
]
