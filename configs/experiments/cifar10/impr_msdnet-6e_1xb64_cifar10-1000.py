# Impr (IMTA): gradient equilibrium + last-exit KD (T 1, λ 0.1), in the
# CIFAR-10 low-data regime of _base_/msdnet_cifar10_lowdata.py.
_base_ = ['./_base_/msdnet_cifar10_lowdata.py']
model = dict(head=dict(loss=dict(scheme='impr', temperature=1.0, kd_weight=0.1)))
