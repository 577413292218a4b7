from .generic_head import GenericExitHead
from .msdnet_head import MSDNetExitHead
from .multi_exit_head import MultiExitHead

__all__ = ['MultiExitHead', 'MSDNetExitHead', 'GenericExitHead']
