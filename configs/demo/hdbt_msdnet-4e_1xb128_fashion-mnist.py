# Demo of the hdbt scheme on Fashion-MNIST: the HDKD demo with another
# objective set (see configs/hdbt/hdbt_msdnet-8e_1xb128_cifar100.py).
#   python tools/train.py configs/demo/hdbt_msdnet-4e_1xb128_fashion-mnist.py
_base_ = ['./hdkd_msdnet-4e_1xb128_fashion-mnist.py']
model = dict(head=dict(loss=dict(scheme='hdbt')))
