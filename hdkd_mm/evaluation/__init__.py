from .confidence import CONFIDENCES, confidence, topk_correct
from .early_exit import (EarlyExitPredictor, EarlyExitResult,
                         early_exit_forward)
from .metrics import EarlyExitMetric, MultiExitAccuracy, exit_topk_accuracy

__all__ = [
    'MultiExitAccuracy', 'exit_topk_accuracy', 'EarlyExitMetric',
    'EarlyExitPredictor', 'EarlyExitResult', 'early_exit_forward',
    'CONFIDENCES', 'confidence', 'topk_correct'
]
