"""The engine every model shares: the training loop and its hooks (train_loop.py, hooks.py), the config-driven
trainer (trainer.py, resume.py, freeze.py), inference and the evaluation drivers (inference.py, detection_eval.py,
relation_eval.py), and what tools do before building a model (defaults.py, detection.py, relation.py)."""
from .defaults import default_argument_parser, default_setup, load_trained_weights, resolve_device
from .detection_eval import evaluate_detector
from .freeze import freeze_by_patterns
from .hooks import HookBase
from .inference import inference_on_dataset, run_inference
from .precision import autocast_context
from .train_loop import SimpleTrainer, TrainerBase
from .trainer import Trainer, TrainingInterrupted

__all__ = ["Trainer", "SimpleTrainer", "TrainerBase", "TrainingInterrupted", "HookBase", "autocast_context",
           "freeze_by_patterns", "inference_on_dataset", "run_inference", "evaluate_detector",
           "default_argument_parser", "default_setup", "resolve_device", "load_trained_weights"]
