"""AlpacaEval (Li et al. 2023, github.com/tatsu-lab/alpaca_eval): 805 open-ended instructions, answers
scored by a reward model, as in arXiv 2604.06628.

Data: hub dataset `tatsu-lab/alpaca_eval`, file `alpaca_eval.json` (the "alpaca_eval" config, split
"eval"; fields instruction, output -- the reference answer, text-davinci-003's --, generator, dataset).
The hub repo serves that config through a loading script, which `datasets` >= 4 no longer runs, so the
JSON file is downloaded directly (`hf_hub_download`); `data_file: alpaca_eval_gpt4_baseline.json` gives
AlpacaEval 2.0's GPT-4-turbo references instead.

Protocol of the authors' scripts (github.com/Nebularaid2000/rethink_sft_generalization@3378e2b,
`evaluation/alpaca_eval/code/generate_alpaca.py`, `evaluate_reward.py`): the instruction is the only user
turn (no system prompt); one sample at temperature 0.7, top_p 0.9, up to 16,384 new tokens (their top_k 50
and presence/frequency penalties 0.1 are not in sftlab's `SamplingConfig`); the text up to the last
`</think>` is removed and the rest stripped before scoring (sftlab's `split_thinking`, so an unclosed
`<think>` leaves an empty answer where theirs scores the raw text); the reward is the reward model's raw
output for (instruction, answer).

Metrics from `aggregate`: `reward_mean` (the paper's number), `reference_reward_mean` (the dataset's
reference answers, scored by the same reward model once per run and cached), `win_rate` (share of answers
whose reward beats their reference's, ties one half) and `score` = `accuracy` = `win_rate`, the general
group's headline (a reward's scale depends on the reward model, a win rate does not). Answers the reward
model cannot score (longer than its `max_length`) are left out and counted in `rm_error_rate`.
Knows nothing about backends or Lightning.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from sftlab.data.example import DataError
from sftlab.eval.answer_extraction import split_thinking
from sftlab.eval.scorers.reward_model import RewardModel, win_value
from sftlab.eval.task import EvalItem, TaskGroup
from sftlab.eval.tasks._source import benchmark_rows, build_items
from sftlab.eval.types import SamplingConfig, Score

HUB_ID, DATA_FILE, SPLIT = "tatsu-lab/alpaca_eval", "alpaca_eval.json", "eval"
REWARD_MODEL_EXAMPLE = (
    "reward_model: {class_path: sftlab.eval.scorers.reward_model.RewardModelScorer, init_args: "
    "{model: allenai/Llama-3.1-8B-Instruct-RM-RB2}} (the paper's; Skywork/Skywork-Reward-V2-Llama-3.1-8B "
    "also works)"
)


def download(repo_id: str = HUB_ID, data_file: str = DATA_FILE, revision: str | None = None) -> str:
    """The hub dataset's JSON file, downloaded (or cached) by `huggingface_hub.hf_hub_download`."""
    from huggingface_hub import hf_hub_download

    try:
        return hf_hub_download(repo_id, data_file, repo_type="dataset", revision=revision)
    except Exception as exc:  # no network, bad file name or revision: say how to fix it
        raise DataError(
            f"cannot download {data_file} from {repo_id}: {type(exc).__name__}: {exc}. Check data_file and "
            "revision, or pass source (a local copy of the JSON file)"
        ) from exc


class AlpacaEvalTask:
    """AlpacaEval mean reward and win rate against the reference answers, scored by a reward model.

    Args:
        reward_model: the reward model (class_path of a `RewardModel`, e.g. `RewardModelScorer`), required.
        source: local JSON/JSONL/Parquet file in the hub schema (overrides the hub).
        repo_id, data_file, revision: the hub dataset file, used when `source` is not given.
        limit: first N instructions (None: all 805).
        n, temperature, top_p, max_tokens, seed: sampling (authors' script: one sample, 0.7, 0.9, 16384).
        group: the task's group for aggregates.
        name: task name in metric keys.
    """

    version = 1

    def __init__(
        self,
        reward_model: RewardModel | None = None,
        source: str | None = None,
        repo_id: str = HUB_ID,
        data_file: str = DATA_FILE,
        revision: str | None = None,
        limit: int | None = None,
        n: int = 1,
        temperature: float = 0.7,
        top_p: float = 0.9,
        max_tokens: int = 16384,
        seed: int = 0,
        group: TaskGroup = "general",
        name: str = "alpacaeval",
    ) -> None:
        problems = []
        if reward_model is None:
            problems.append(
                f"reward_model is not set; AlpacaEval is scored by a reward model: set {REWARD_MODEL_EXAMPLE}"
            )
        if limit is not None and limit < 1:
            problems.append(f"limit must be >= 1 or None, got limit={limit}")
        if problems:
            raise ValueError("invalid AlpacaEvalTask: " + "; ".join(problems))
        self.reward_model: RewardModel = reward_model  # type: ignore[assignment]  # checked above
        self.source = source
        self.repo_id, self.data_file, self.revision = repo_id, data_file, revision
        self.limit = limit
        self.name = name
        self.group = group
        self.sampling = SamplingConfig(
            n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed
        )
        self._items: list[EvalItem] | None = None
        # Reference rewards of this run, by (instruction, reference output): computed once, reused by
        # every later eval (they do not change while the policy trains).
        self._reference_rewards: dict[tuple[str, str], float | None] = {}

    def items(self) -> list[EvalItem]:
        if self._items is None:
            source = self.source or download(self.repo_id, self.data_file, self.revision)
            rows = benchmark_rows(source, self.repo_id, SPLIT, limit=self.limit)
            self._items = build_items(rows, self._item, "AlpacaEval")
        return self._items

    def _item(self, i: int, row: Mapping[str, Any]) -> EvalItem:
        instruction, output = row["instruction"], row["output"]
        if not isinstance(instruction, str) or not instruction.strip() or not isinstance(output, str):
            raise ValueError("'instruction' must be a non-empty string and 'output' a string")
        reference = {"instruction": instruction, "output": output, "generator": str(row.get("generator", ""))}
        return EvalItem(
            id=f"{self.name}:{i}", prompt=({"role": "user", "content": instruction},), reference=reference
        )

    # -- scoring ---------------------------------------------------------------------------------------
    def score(self, response: str, reference: Mapping[str, Any]) -> Score:
        return self.score_many([response], [reference])[0]

    def score_many(self, responses: Sequence[str], references: Sequence[Mapping[str, Any]]) -> list[Score]:
        """Rewards of the answers (thinking stripped) and of the not yet scored references, in one call."""
        keys = [(str(ref["instruction"]), str(ref["output"])) for ref in references]
        new = list(dict.fromkeys(k for k in keys if k not in self._reference_rewards))
        pairs = [(k[0], split_thinking(r)[1].strip()) for k, r in zip(keys, responses, strict=True)]
        rewards = self.reward_model.rewards(pairs + new)
        if len(rewards) != len(pairs) + len(new):
            raise RuntimeError(
                f"reward model {self.reward_model.name} returned {len(rewards)} rewards for {len(pairs) + len(new)} pairs"
            )
        self._reference_rewards.update(zip(new, rewards[len(pairs) :], strict=True))
        return [
            self._score(r, self._reference_rewards[k])
            for r, k in zip(rewards[: len(pairs)], keys, strict=True)
        ]

    def _score(self, reward: float | None, reference_reward: float | None) -> Score:
        details = {
            "reward_model": self.reward_model.name,
            "reward": reward,
            "reference_reward": reference_reward,
        }
        if reward is None or reference_reward is None:
            which = "answer" if reward is None else "reference answer"
            error = f"rm_error: the reward model could not score the {which} (longer than its max_length?)"
            return Score(correct=False, value=0.0, error=error, details=details)
        value = win_value(reward, reference_reward)
        return Score(correct=value == 1.0, extracted=f"{reward:.4f}", value=value, details=details)

    # -- metrics ---------------------------------------------------------------------------------------
    def aggregate(self, records: list[dict[str, Any]]) -> dict[str, float]:
        """Mean reward, mean reference reward, win rate over scored answers; the unscored share."""
        if not records:
            return {}
        details = [record.get("details") or {} for record in records]
        scored = [d for d in details if d.get("reward") is not None and d.get("reference_reward") is not None]
        rewards = [float(d["reward"]) for d in scored]
        references = [float(d["reference_reward"]) for d in scored]
        wins = [win_value(r, ref) for r, ref in zip(rewards, references, strict=True)]
        metrics = {
            "reward_mean": _mean(rewards),
            "reference_reward_mean": _mean(references),
            "win_rate": _mean(wins),
            "rm_error_rate": (len(records) - len(scored)) / len(records),
        }
        metrics["score"] = metrics["accuracy"] = metrics["win_rate"]
        return metrics


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan
