from .early_exit import (EarlyExitClassifier, EarlyExitMetric,
                         EarlyExitPredictor, EarlyExitResult,
                         early_exit_forward)
from .metrics import MultiExitAccuracy, exit_topk_accuracy

__all__ = [
    'MultiExitAccuracy', 'exit_topk_accuracy', 'EarlyExitClassifier',
    'EarlyExitMetric', 'EarlyExitPredictor', 'EarlyExitResult',
    'early_exit_forward'
]
