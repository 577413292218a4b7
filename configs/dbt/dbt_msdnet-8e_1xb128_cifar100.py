# DBT (Eq. 3): Σ CE + λ·KD from the last exit to every earlier exit; λ = 1, T = 4 (the paper gives neither).
#   python tools/train.py configs/dbt/dbt_msdnet-8e_1xb128_cifar100.py
_base_ = ['../msdnet/msdnet_msdnet-8e_1xb128_cifar100.py']
model = dict(head=dict(loss=dict(scheme='dbt', temperature=4.0, kd_weight=1.0)))
