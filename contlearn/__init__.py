"""contlearn: a continual-learning task manager for NLP models.

Each task gets its own Houlsby bottleneck adapter on one frozen shared backbone; a ledger
records the task sequence, every run, artifact and evaluation, and proves that training a new
task leaves every earlier task's predictions bit-identical.
"""

__version__ = "0.1.0"
