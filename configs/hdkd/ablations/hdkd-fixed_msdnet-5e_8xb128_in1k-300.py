# Ablation (Table 3, Fixed-1/Fixed-2): train from scratch with γ frozen at the
# final γ of a converged HDKD run (no γ step, no held-out batch: a plain
# training step with those weights). The paper takes two converged γ
# (Fixed-1, Fixed-2); run this once per converged checkpoint:
#   tools/dist_train.sh configs/hdkd/ablations/hdkd-fixed_msdnet-5e_8xb128_in1k-300.py 8 \
#       --cfg-options model.loss_weights.path=work_dirs/hdkd_msdnet-5e_8xb128_in1k-300/epoch_90.pth
# `path`: a checkpoint (γ from `loss_weights.gamma` in its state_dict), or a
# JSON list or {objective name: weight} dict.
_base_ = ['./hdkd_msdnet-5e_8xb128_in1k-300.py']
model = dict(
    loss_weights=dict(
        init='fixed',
        path='work_dirs/hdkd_msdnet-5e_8xb128_in1k-300/epoch_90.pth'))
