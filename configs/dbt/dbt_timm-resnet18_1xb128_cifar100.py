# DBT (Eq. 3) on the timm ResNet-18: Σ CE + λ·KD from the last
# exit to every earlier exit; λ = 1, T = 4 (as configs/dbt/dbt_msdnet-8e_1xb128_cifar100.py).
#   python tools/train.py configs/dbt/dbt_timm-resnet18_1xb128_cifar100.py
_base_ = ['../msdnet/msdnet_timm-resnet18_1xb128_cifar100.py']
model = dict(
    head=dict(loss=dict(scheme='dbt', temperature=4.0, kd_weight=1.0)))
