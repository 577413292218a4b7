# Ablation (Table 3, "α of HDKD", Eq. 10): α = 1 instead of 0.5. α = 1 keeps
# only the plain sum of the held-out CE terms, α = 0 only the EMA-balanced one.
#   tools/dist_train.sh configs/hdkd/ablations/hdkd-alpha1_msdnet-5e_8xb128_in1k-300.py 8
_base_ = ['./hdkd_msdnet-5e_8xb128_in1k-300.py']
model = dict(loss_weights=dict(alpha=1))
