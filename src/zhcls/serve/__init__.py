"""Serving: load a bundle and predict, with numpy + onnxruntime only (no torch)."""

from .predictor import Prediction, Predictor

__all__ = ["Prediction", "Predictor"]
