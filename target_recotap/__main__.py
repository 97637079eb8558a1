"""``python -m target_recotap``."""

from target_recotap.target import TargetRecotap

TargetRecotap.cli()
