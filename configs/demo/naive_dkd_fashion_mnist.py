# Demo of the naive_dkd scheme on Fashion-MNIST: the MSDNet demo with
# another objective set (see configs/naive_dkd/msdnet_cifar100.py).
#   python tools/train.py configs/demo/naive_dkd_fashion_mnist.py
_base_ = ['./msdnet_fashion_mnist.py']
model = dict(head=dict(loss=dict(scheme='naive_dkd', temperature=4.0, kd_weight=1.0)))
