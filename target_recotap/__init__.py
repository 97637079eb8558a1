"""target-recotap: a Singer target that pushes CRM accounts, deals, pipelines and sales activities
into Recotap."""

__version__ = "0.1.0"
