# Demo: a 4-exit MSDNet on Fashion-MNIST (real data, runs on 2 CPU cores in
# under 10 minutes). Scheme: MSDNet (Σ_k CE_k).
#   python tools/train.py configs/demo/msdnet_msdnet-4e_1xb128_fashion-mnist.py
# Model and data: _base_/msdnet-4e_fashion-mnist.py.
_base_ = [
    './_base_/msdnet-4e_fashion-mnist.py',
    '../_base_/schedules/demo_sgd_3e.py',
]
