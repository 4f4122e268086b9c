"""The training engine every model shares: the loop and its hooks, inference, tool setup."""
from .defaults import default_argument_parser, default_setup, load_trained_weights, resolve_device
from .freeze import freeze_by_patterns
from .inference import evaluate_detector, inference_on_dataset, run_inference
from .hooks import HookBase
from .trainer import SimpleTrainer, Trainer, TrainerBase, TrainingInterrupted, autocast_context

__all__ = ["Trainer", "SimpleTrainer", "TrainerBase", "TrainingInterrupted", "HookBase", "autocast_context",
           "freeze_by_patterns", "inference_on_dataset", "run_inference", "evaluate_detector",
           "default_argument_parser", "default_setup", "resolve_device", "load_trained_weights"]
