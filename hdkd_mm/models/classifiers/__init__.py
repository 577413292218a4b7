from .multi_exit import MultiExitClassifier, infer_exit_channels

__all__ = ['MultiExitClassifier', 'infer_exit_channels']
