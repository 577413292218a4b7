# NaiveDKD: CE + every dense KD pair, uniform weights (T 4, λ 1), in the Fashion-MNIST(100) regime of
# _base_/msdnet6_fmnist100.py (suite configs/experiments/fashion_mnist_lowdata.yaml).
#   python tools/train.py configs/experiments/fashion_mnist/naive-dkd_msdnet-6e_1xb64_fashion-mnist100.py
_base_ = ['./_base_/msdnet6_fmnist100.py']
model = dict(head=dict(loss=dict(scheme='naive_dkd', temperature=4.0, kd_weight=1.0)))
