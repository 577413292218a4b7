from .early_exit import EarlyExitMetric
from .multi_exit_accuracy import MultiExitAccuracy, exit_topk_accuracy

__all__ = ['MultiExitAccuracy', 'exit_topk_accuracy', 'EarlyExitMetric']
