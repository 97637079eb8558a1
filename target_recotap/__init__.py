"""target-recotap: a Singer target that pushes CRM deals and pipelines into Recotap."""

__version__ = "0.1.0"
