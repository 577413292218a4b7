# DBT: CE + KD from the last exit (T 4, λ 1), in the CIFAR-10 low-data regime
# of _base_/msdnet_cifar10_lowdata.py (suite configs/experiments/cifar10_lowdata.yaml).
_base_ = ['./_base_/msdnet_cifar10_lowdata.py']
model = dict(head=dict(loss=dict(scheme='dbt', temperature=4.0, kd_weight=1.0)))
