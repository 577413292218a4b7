# MSDNet: Σ_k CE_k, in the Fashion-MNIST(100) regime of
# _base_/msdnet6_fmnist100.py (suite configs/experiments/fashion_mnist_lowdata.yaml).
#   python tools/train.py configs/experiments/fashion_mnist/msdnet_msdnet-6e_1xb64_fashion-mnist100.py
_base_ = ['./_base_/msdnet6_fmnist100.py']
model = dict(head=dict(loss=dict(scheme='msdnet')))
