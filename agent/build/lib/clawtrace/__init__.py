"""ClawTrace local agent: reads agent session logs, prices turns, keeps a local store."""

__version__ = "0.1.0"
