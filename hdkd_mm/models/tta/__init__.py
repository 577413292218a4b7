from .multi_exit_tta import AverageExitScoresTTA

__all__ = ['AverageExitScoresTTA']
