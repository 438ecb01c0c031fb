"""Data: examples, chat formatting with assistant-only labels, batching, data regimes. Imports no Lightning
except in `datamodule.py`."""
