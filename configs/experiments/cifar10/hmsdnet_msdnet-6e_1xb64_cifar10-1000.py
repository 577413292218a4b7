# HMSDNet: learned γ over the CE terms, in the CIFAR-10
# low-data regime of _base_/msdnet_cifar10_lowdata.py with the bilevel step
# of _base_/bilevel.py (suite configs/experiments/cifar10_lowdata.yaml).
_base_ = ['./_base_/bilevel.py']
model = dict(head=dict(loss=dict(scheme='hmsdnet', temperature=4.0)))
