"""Knowledge distillation: teachers (a run, an ensemble of runs, a fine-tuned transformer run), their
soft targets (batched, cached by content hash, resumable) and the transfer set a student learns from."""

from .soft import SoftLabels, label_texts, read_soft_targets
from .teachers import Teacher, load_teacher

__all__ = ["SoftLabels", "Teacher", "label_texts", "load_teacher", "read_soft_targets"]
