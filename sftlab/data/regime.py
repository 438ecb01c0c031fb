"""What a data regime is: a named source of SFT examples with train/validation/test splits.

Regimes are injected into `SFTDataModule` through `class_path`, so switching regime is one YAML line
(`--config configs/data_regimes/<name>.yaml`). A regime only produces `Example`s; tokenization, length
filtering and batching belong to the data module.
"""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

from sftlab.data.example import Example

Split = Literal["train", "validation", "test"]


@runtime_checkable
class DataRegime(Protocol):
    """A data regime. `name` is recorded with every run as the `data_regime` param."""

    name: str

    def load(self, split: Split) -> list[Example]:
        """All examples of a split, in a deterministic order. Raise DataError for bad rows."""
        ...
