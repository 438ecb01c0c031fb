r"""The math data regimes of arXiv 2604.06628 and the literal registry of every data regime.

Each regime is a small class (`name`, `load(split)`, `stats`) injected into `SFTDataModule` through
`class_path`; `configs/data_regimes/<name>.yaml` selects one with a single `--config`. They share their row
reading (`sftlab.data.math_rows.MathRows`) and differ in default source, accepted schema and `<think>` rule:

| name            | data (paper §4, Table 2)                              | `<think>` rule                    |
| math_cot        | Math-CoT-20k: Qwen3-32B long CoT, verified            | must close `</think>`             |
| math_nocot      | Math-NoCoT-20k: the same with the thinking removed    | stripped (or none in the file)    |
| numinamath      | NuminaMath-20k: human short solutions, same queries   | none                              |
| deepseek_r1     | DeepSeek-R1-20k: another teacher's verified long CoT  | must close `</think>`             |
| unverified_cot  | teacher long CoT kept without answer verification     | must close `</think>`             |
| countdown_cot   | Countdown long CoT (`sftlab.data.countdown_regime`)   | generated                         |

Hub ids are the authors' releases (github.com/Nebularaid2000/rethink_sft_generalization@3378e2b, README
"Open-source Datasets"). Unverified CoT has no release: build one from raw teacher outputs with
`python -m sftlab data build --regime unverified_cot`. Regimes know nothing about tokenizers.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from sftlab.data.countdown_regime import CountdownRegime
from sftlab.data.example import PAPER_INSTRUCTION, Example
from sftlab.data.math_rows import MATH_SCHEMA, NUMINA_SCHEMA, MathRows, OnBadRow
from sftlab.data.regime import Split

MATH_COT_20K = "jasonrqh/Math-CoT-20k"
MATH_NOCOT_20K = "jasonrqh/Math-NoCoT-20k"
NUMINAMATH_20K = "jasonrqh/NuminaMath-20k"
DEEPSEEK_R1_20K = "jasonrqh/DeepSeek-R1-20k"


class MathCoT:
    r"""Math-CoT-20k: OpenR1-Math questions with Qwen3-32B `<think>…</think>` + summary + `\boxed{}`
    responses verified by math-verify (the paper's default data). Rows: `message`/`messages` + `response`,
    or `question` + `response`; a response without a closed `</think>` is a bad row.

    Args:
        source: hub dataset id or local .jsonl/.json/.parquet file.
        field_map: `{file column: expected column}` for other schemas, e.g. `{query: question}`.
        instruction: appended to the user turn (the paper's by default; "" for none; never doubled).
        split: split of a hub dataset to train on.
        validation_source: optional held-out rows (same schema) for teacher-forced `val/loss`.
        validation_split: split of a hub `validation_source`.
        on_bad_row: "error" lists every bad row and stops; "skip" drops them, counts them by reason in
            `stats` and logs a warning.
    """

    name = "math_cot"

    def __init__(
        self,
        source: str = MATH_COT_20K,
        field_map: dict[str, str] | None = None,
        instruction: str = PAPER_INSTRUCTION,
        split: str = "train",
        validation_source: str | None = None,
        validation_split: str = "train",
        on_bad_row: OnBadRow = "error",
    ) -> None:
        self.rows = MathRows(
            self.name,
            MATH_SCHEMA,
            "require",
            source=source,
            field_map=field_map,
            instruction=instruction,
            split=split,
            validation_source=validation_source,
            validation_split=validation_split,
            on_bad_row=on_bad_row,
        )
        self.stats = self.rows.stats

    def load(self, split: Split) -> list[Example]:
        return self.rows.load(split)


class MathNoCoT:
    r"""Math-NoCoT-20k: Math-CoT-20k without its thinking (the summary and `\boxed{}` answer remain).

    Args:
        source: the CoT rows to strip (`derive_from_cot=True`; default Math-CoT-20k) or no-CoT rows
            (`derive_from_cot=False`; default the released Math-NoCoT-20k).
        derive_from_cot: strip on the fly: response = the text after the last `</think>`, stripped (a row
            without `</think>` is bad). Off: rows are already no-CoT, and a response that still holds
            `<think>`/`</think>` is bad.
        field_map: `{file column: expected column}` for other schemas, e.g. `{query: question}`.
        instruction: appended to the user turn (the paper's by default; "" for none; never doubled).
        split: split of a hub dataset to train on.
        validation_source: optional held-out rows (same schema) for teacher-forced `val/loss`.
        validation_split: split of a hub `validation_source`.
        on_bad_row: "error" lists every bad row and stops; "skip" drops and counts them (`stats`).
    """

    name = "math_nocot"

    def __init__(
        self,
        source: str | None = None,
        derive_from_cot: bool = True,
        field_map: dict[str, str] | None = None,
        instruction: str = PAPER_INSTRUCTION,
        split: str = "train",
        validation_source: str | None = None,
        validation_split: str = "train",
        on_bad_row: OnBadRow = "error",
    ) -> None:
        if source is None:
            source = MATH_COT_20K if derive_from_cot else MATH_NOCOT_20K
        self.derive_from_cot = derive_from_cot
        self.rows = MathRows(
            self.name,
            MATH_SCHEMA,
            "strip" if derive_from_cot else "forbid",
            source=source,
            field_map=field_map,
            instruction=instruction,
            split=split,
            validation_source=validation_source,
            validation_split=validation_split,
            on_bad_row=on_bad_row,
        )
        self.stats = self.rows.stats

    def load(self, split: Split) -> list[Example]:
        return self.rows.load(split)


class NuminaMath:
    """NuminaMath-20k: human-written short solutions (NuminaMath-1.5) for the same queries, the paper's
    low-quality no-CoT set. Rows: `problem` + `solution` (NuminaMath-CoT's schema), `messages`, or the
    released `message` + `response`.

    Args:
        source: hub dataset id or local .jsonl/.json/.parquet file.
        field_map: `{file column: expected column}` for other schemas, e.g. `{query: problem}`.
        instruction: appended to the user turn (the paper's by default; "" for none; never doubled).
        split: split of a hub dataset to train on.
        validation_source: optional held-out rows (same schema) for teacher-forced `val/loss`.
        validation_split: split of a hub `validation_source`.
        on_bad_row: "error" lists every bad row and stops; "skip" drops and counts them (`stats`).
    """

    name = "numinamath"

    def __init__(
        self,
        source: str = NUMINAMATH_20K,
        field_map: dict[str, str] | None = None,
        instruction: str = PAPER_INSTRUCTION,
        split: str = "train",
        validation_source: str | None = None,
        validation_split: str = "train",
        on_bad_row: OnBadRow = "error",
    ) -> None:
        self.rows = MathRows(
            self.name,
            NUMINA_SCHEMA,
            "any",
            source=source,
            field_map=field_map,
            instruction=instruction,
            split=split,
            validation_source=validation_source,
            validation_split=validation_split,
            on_bad_row=on_bad_row,
        )
        self.stats = self.rows.stats

    def load(self, split: Split) -> list[Example]:
        return self.rows.load(split)


class DeepSeekR1:
    """DeepSeek-R1-20k: verified long CoT from another teacher (DeepSeek-R1, via the LUFFY set) on the same
    queries, in the math_cot schema. A class of its own so the run's `data_regime` says which teacher.

    Args:
        source: hub dataset id or local .jsonl/.json/.parquet file.
        field_map: `{file column: expected column}` for other schemas, e.g. `{query: question}`.
        instruction: appended to the user turn (the paper's by default; "" for none; never doubled).
        split: split of a hub dataset to train on.
        validation_source: optional held-out rows (same schema) for teacher-forced `val/loss`.
        validation_split: split of a hub `validation_source`.
        on_bad_row: "error" lists every bad row and stops; "skip" drops and counts them (`stats`).
    """

    name = "deepseek_r1"

    def __init__(
        self,
        source: str = DEEPSEEK_R1_20K,
        field_map: dict[str, str] | None = None,
        instruction: str = PAPER_INSTRUCTION,
        split: str = "train",
        validation_source: str | None = None,
        validation_split: str = "train",
        on_bad_row: OnBadRow = "error",
    ) -> None:
        self.rows = MathRows(
            self.name,
            MATH_SCHEMA,
            "require",
            source=source,
            field_map=field_map,
            instruction=instruction,
            split=split,
            validation_source=validation_source,
            validation_split=validation_split,
            on_bad_row=on_bad_row,
        )
        self.stats = self.rows.stats

    def load(self, split: Split) -> list[Example]:
        return self.rows.load(split)


class UnverifiedCoT:
    """Teacher long CoT kept without checking its answers, in the math_cot schema. There is no released
    set, so `source` is required: build one with `python -m sftlab data build --regime unverified_cot`.

    Args:
        source: hub dataset id or local .jsonl/.json/.parquet file (required).
        field_map: `{file column: expected column}` for other schemas, e.g. `{query: question}`.
        instruction: appended to the user turn (the paper's by default; "" for none; never doubled).
        split: split of a hub dataset to train on.
        validation_source: optional held-out rows (same schema) for teacher-forced `val/loss`.
        validation_split: split of a hub `validation_source`.
        on_bad_row: "error" lists every bad row and stops; "skip" drops and counts them (`stats`).
    """

    name = "unverified_cot"

    def __init__(
        self,
        source: str,
        field_map: dict[str, str] | None = None,
        instruction: str = PAPER_INSTRUCTION,
        split: str = "train",
        validation_source: str | None = None,
        validation_split: str = "train",
        on_bad_row: OnBadRow = "error",
    ) -> None:
        self.rows = MathRows(
            self.name,
            MATH_SCHEMA,
            "require",
            source=source,
            field_map=field_map,
            instruction=instruction,
            split=split,
            validation_source=validation_source,
            validation_split=validation_split,
            on_bad_row=on_bad_row,
        )
        self.stats = self.rows.stats

    def load(self, split: Split) -> list[Example]:
        return self.rows.load(split)


DATA_REGIMES: dict[str, type] = {
    "math_cot": MathCoT,
    "math_nocot": MathNoCoT,
    "numinamath": NuminaMath,
    "deepseek_r1": DeepSeekR1,
    "unverified_cot": UnverifiedCoT,
    "countdown_cot": CountdownRegime,
}


def data_regime_class(name: str, registry: Mapping[str, type] = DATA_REGIMES) -> type:
    """The class registered under `name`; an unknown name fails with "did you mean" and the known names."""
    if name in registry:
        return registry[name]
    close = difflib.get_close_matches(name, list(registry), n=2)
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    raise ValueError(f"unknown data regime {name!r}.{hint} Known data regimes: {', '.join(registry)}.")
