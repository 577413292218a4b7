# NaiveDKD: CE + every dense KD pair, uniform weights (T 4, λ 1), in the
# CIFAR-10 low-data regime of _base_/msdnet_cifar10_lowdata.py.
_base_ = ['./_base_/msdnet_cifar10_lowdata.py']
model = dict(head=dict(loss=dict(scheme='naive_dkd', temperature=4.0, kd_weight=1.0)))
