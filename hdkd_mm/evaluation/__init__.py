from .metrics import MultiExitAccuracy, exit_topk_accuracy

__all__ = ['MultiExitAccuracy', 'exit_topk_accuracy']
