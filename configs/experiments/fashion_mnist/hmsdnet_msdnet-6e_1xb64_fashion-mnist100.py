# HMSDNet: learned γ over the CE terms, in the Fashion-MNIST(100) regime of
# _base_/msdnet6_fmnist100.py with the bilevel step of _base_/bilevel.py
# (suites configs/experiments/fashion_mnist_{lowdata,ablation}.yaml).
#   python tools/train.py configs/experiments/fashion_mnist/hmsdnet_msdnet-6e_1xb64_fashion-mnist100.py
_base_ = ['./_base_/bilevel.py']
model = dict(head=dict(loss=dict(scheme='hmsdnet', temperature=4.0)))
