# Demo of the dbt scheme on Fashion-MNIST: the MSDNet demo with
# another objective set (see configs/dbt/msdnet_cifar100.py).
#   python tools/train.py configs/demo/dbt_fashion_mnist.py
_base_ = ['./msdnet_fashion_mnist.py']
model = dict(head=dict(loss=dict(scheme='dbt', temperature=4.0, kd_weight=1.0)))
