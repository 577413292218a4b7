# HDBT: learned γ over the CE terms and the last-exit KD terms.
#   python tools/train.py configs/hdbt/msdnet_cifar100.py
_base_ = ['../hdkd/msdnet_cifar100.py']
model = dict(head=dict(loss=dict(scheme='hdbt')))
