from .loss_weights import (LearnedLossWeights, check_gamma_length,
                           initial_gamma, load_gamma, project_simplex)

__all__ = ['LearnedLossWeights', 'check_gamma_length', 'initial_gamma',
           'load_gamma', 'project_simplex']
