# DBT (Eq. 3) on the 4-exit ViT-Tiny: Σ CE + λ·KD from the last
# exit to every earlier exit; λ = 1, T = 4 (as configs/dbt/msdnet_cifar100.py).
#   python tools/train.py configs/dbt/vit-tiny_cifar100.py
_base_ = ['../msdnet/vit-tiny_cifar100.py']
model = dict(
    head=dict(loss=dict(scheme='dbt', temperature=4.0, kd_weight=1.0)))
