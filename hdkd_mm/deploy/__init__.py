"""Deployment: early-exit inference exported to ONNX (:mod:`.export`) and
run on ONNX Runtime without torch or OpenMMLab (:mod:`.runtime`)."""
from .runtime import CONFIDENCES, OnnxEarlyExit

__all__ = ['OnnxEarlyExit', 'CONFIDENCES']
