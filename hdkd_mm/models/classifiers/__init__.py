from .early_exit import EarlyExitClassifier
from .multi_exit import MultiExitClassifier, infer_exit_channels

__all__ = ['MultiExitClassifier', 'EarlyExitClassifier', 'infer_exit_channels']
