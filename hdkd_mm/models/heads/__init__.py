from .multi_exit_head import MultiExitHead

__all__ = ['MultiExitHead']
