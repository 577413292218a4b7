# HDKD: learned γ over CE + every dense KD pair (T 4), DS-like init, α 0.5, in the CIFAR-10
# low-data regime of _base_/msdnet_cifar10_lowdata.py with the bilevel step
# of _base_/bilevel.py (suite configs/experiments/cifar10_lowdata.yaml).
_base_ = ['./_base_/bilevel.py']
model = dict(head=dict(loss=dict(scheme='hdkd', temperature=4.0)))
