# DBT (Eq. 3): Σ CE + λ·KD from the last exit to every earlier exit; λ = 1, T = 4 (the paper gives neither).
#   python tools/train.py configs/dbt/dbt_msdnet-5e_8xb128_in1k.py
#   tools/dist_train.sh configs/dbt/dbt_msdnet-5e_8xb128_in1k.py 8   (batch 1024 = 128 × 8)
_base_ = ['../msdnet/msdnet_msdnet-5e_8xb128_in1k.py']
model = dict(head=dict(loss=dict(scheme='dbt', temperature=4.0, kd_weight=1.0)))
