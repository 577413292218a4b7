from .multi_exit_inferencer import MultiExitInferencer

__all__ = ['MultiExitInferencer']
