# MSDNet scheme (Σ_k CE_k) on a 4-exit ViT-Tiny with 4×4 patches (exits on
# the class token after blocks 3/6/9/12), CIFAR-100 with the MSDNet data
# split, batch 128 and 300 epochs, and the from-scratch ViT recipe of
# configs/_base_/schedules/cifar_adamw_300e.py (AdamW, lr 1e-3, wd 0.05,
# warm-up + cosine).
#   python tools/train.py configs/msdnet/msdnet_vit-tiny_1xb128_cifar100.py
_base_ = [
    '../_base_/models/vit_tiny_cifar.py',
    '../_base_/datasets/cifar100_heldout.py',
    '../_base_/schedules/cifar_adamw_300e.py',
    '../_base_/default_runtime.py',
]
