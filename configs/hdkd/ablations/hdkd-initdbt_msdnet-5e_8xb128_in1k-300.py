# Ablation (Table 3, "HDKD with different γ initialization"): γ starts
# 'dbt_like' instead of 'ds_like'. The paper finds HDKD insensitive to it.
#   tools/dist_train.sh configs/hdkd/ablations/hdkd-initdbt_msdnet-5e_8xb128_in1k-300.py 8
_base_ = ['./hdkd_msdnet-5e_8xb128_in1k-300.py']
model = dict(loss_weights=dict(init='dbt_like'))
