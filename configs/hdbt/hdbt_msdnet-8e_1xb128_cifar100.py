# HDBT: learned γ over the CE terms and the last-exit KD terms.
#   python tools/train.py configs/hdbt/hdbt_msdnet-8e_1xb128_cifar100.py
_base_ = ['../hdkd/hdkd_msdnet-8e_1xb128_cifar100.py']
model = dict(head=dict(loss=dict(scheme='hdbt')))
