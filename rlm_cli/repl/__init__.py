"""The REPL the root LM programs: one Python subprocess per RLM instance (see ``child.py``/``process.py``)."""
