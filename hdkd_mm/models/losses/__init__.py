from .dense_kd import SCHEMES, DenseKDLoss, Objective, build_objectives, get_scheme

__all__ = ['SCHEMES', 'DenseKDLoss', 'Objective', 'build_objectives', 'get_scheme']
