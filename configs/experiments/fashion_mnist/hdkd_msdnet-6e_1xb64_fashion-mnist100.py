# HDKD: learned γ over CE + every dense KD pair (T 4), DS-like init, α 0.5, in the Fashion-MNIST(100) regime of
# _base_/msdnet6_fmnist100.py with the bilevel step of _base_/bilevel.py
# (suites configs/experiments/fashion_mnist_{lowdata,ablation}.yaml).
#   python tools/train.py configs/experiments/fashion_mnist/hdkd_msdnet-6e_1xb64_fashion-mnist100.py
_base_ = ['./_base_/bilevel.py']
model = dict(head=dict(loss=dict(scheme='hdkd', temperature=4.0)))
