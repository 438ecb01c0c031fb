"""The general benchmarks: HaluEval (Yes/No parsing, prompts, per-subset accuracy), TruthfulQA (the judge
rubric's parser, a judge over a loopback chat server and a local backend, the rates), AlpacaEval (a tiny
random reward model, win rate, cached reference rewards), their registry entries, suite YAML and
`sftlab score`.

Every dataset row is a few-row local file written here in the hub schema; no hub access.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from sftlab.data.example import DataError
from sftlab.eval.evaluate import evaluate, flatten_metrics
from sftlab.eval.judges.grader import BackendGrader, ChatGrader, Grader, GraderReply
from sftlab.eval.judges.truthfulqa import TruthfulQAVerdict, parse_truthfulqa, truthfulqa_judge_prompt
from sftlab.eval.registry import BENCHMARKS, build_task
from sftlab.eval.scorers.reward_model import RewardModel, RewardModelScorer, win_rate, win_value
from sftlab.eval.scorers.yes_no import extract_yes_no, score_yes_no
from sftlab.eval.task import EvalTask
from sftlab.eval.tasks.alpacaeval import AlpacaEvalTask
from sftlab.eval.tasks.halueval import HaluEvalTask, halueval_prompt
from sftlab.eval.tasks.truthfulqa import TruthfulQATask
from sftlab.eval.types import Generation
from tests.eval.test_hexphi import ScriptedBackend as OneTextPerPrompt
from tests.eval.test_judges import ChatServer
from tests.eval.test_judges import ScriptedBackend as RecordingBackend


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


# -- HaluEval: reading Yes/No ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "label", "source"),
    [
        ("Yes", "Yes", "last_word"),
        ("no.", "No", "last_word"),
        ("#Your Judgement#: YES", "Yes", "last_word"),
        ("**No**", "No", "last_word"),
        # the verdict after the thinking counts, the one inside it does not
        (
            "<think>At first glance: Yes, it is made up. But the knowledge confirms it.</think>\nNo",
            "No",
            "last_word",
        ),
        ("<think>It matches the knowledge, so No.</think>\n\nYes, the date is invented.", "Yes", "last_word"),
        ("<think>The answer is hallucinated, so Yes.</think>", None, None),  # nothing after the thinking
        ("<think>Let me check whether the answer is Yes or No", None, None),  # clipped inside the thinking
        # the last yes/no word wins, as in the paper's scorer: "no such film" outvotes the leading "Yes"
        ("Yes, the answer is made up; there is no such film.", "No", "last_word"),
        ("No, the answer is supported. Yes, I am sure.", "Yes", "last_word"),
        # a boxed Yes/No beats any later word
        ("The answer invents a sequel.\n\\boxed{Yes}", "Yes", "boxed"),
        ("\\boxed{\\text{No}}. Yes, the dates match the knowledge.", "No", "boxed"),
        ("Final: $\\boxed{no.}$", "No", "boxed"),
        ("\\boxed{B}, so yes", "Yes", "last_word"),  # a box without Yes/No falls back to the words
        ("Nobody knows; yesterday it was fine.", None, None),  # words that merely contain yes/no
        ("", None, None),
    ],
)
def test_extract_yes_no(response: str, label: str | None, source: str | None) -> None:
    assert extract_yes_no(response) == (label, source)
    for gold in ("Yes", "No"):
        score = score_yes_no(response, gold)
        assert score.correct is (label == gold) and score.extracted == label and score.error is None


def test_yes_no_reference_is_checked() -> None:
    assert score_yes_no("Yes", "yes").correct is True  # the dataset's labels are lower case
    with pytest.raises(ValueError, match="'Yes' or 'No'.*got 'maybe'"):
        score_yes_no("Yes", "maybe")


# -- HaluEval: data, prompts, metrics ---------------------------------------------------------------------

QA_ROWS = [
    {
        "knowledge": "Oceansize were an English rock band from Manchester.",
        "question": "What genre does Oceansize belong to?",
        "answer": "Jazz",
        "hallucination": "yes",
    },
    {
        "knowledge": "The Dark Knight was directed by Christopher Nolan.",
        "question": "Who directed The Dark Knight?",
        "answer": "Christopher Nolan",
        "hallucination": "no",
    },
]
DIALOGUE_ROWS = [
    {
        "knowledge": "Inception was directed by Christopher Nolan.",
        "dialogue_history": "[Human]: Who directed Inception?",
        "response": "Steven Spielberg directed it.",
        "hallucination": "yes",
    }
]
SUMMARIZATION_ROWS = [
    {
        "document": "The council approved a new park on Monday.",
        "summary": "A new park was approved by the council.",
        "hallucination": "no",
    }
]


@pytest.fixture
def halueval_sources(tmp_path: Path) -> dict[str, str]:
    return {
        "qa": write_jsonl(tmp_path / "qa.jsonl", QA_ROWS),
        "dialogue": write_jsonl(tmp_path / "dialogue.jsonl", DIALOGUE_ROWS),
        "summarization": write_jsonl(tmp_path / "summarization.jsonl", SUMMARIZATION_ROWS),
    }


def test_halueval_prompts_follow_the_paper_harness(halueval_sources) -> None:
    task = HaluEvalTask(sources=halueval_sources)
    items = task.items()
    assert [i.id for i in items] == [
        "halueval:qa:0",
        "halueval:qa:1",
        "halueval:dialogue:0",
        "halueval:summarization:0",
    ]
    assert [i.reference for i in items] == ["Yes", "No", "Yes", "No"]
    assert all(len(i.prompt) == 1 and i.prompt[0]["role"] == "user" for i in items)
    qa = items[0].prompt[0]["content"]
    assert qa == (
        "I want you act as an answer judge. Given a question and an answer, your objective is to determine if "
        "the provided answer contains non-factual or hallucinated information. You SHOULD give your judgement "
        "based on the following hallucination types and the world knowledge.\nYou should try your best to "
        "determine if the answer contains non-factual or hallucinated information. The answer you give MUST "
        'be "Yes" or "No"".\n\n#Knowledge: Oceansize were an English rock band from Manchester.\n'
        "#Question#: What genre does Oceansize belong to?\n#Answer#: Jazz\n#Your Judgement#:"
    )
    dialogue = items[2].prompt[0]["content"]
    assert dialogue.startswith("I want you act as a response judge.")
    assert dialogue.endswith(
        "\n\n#Knowledge: Inception was directed by Christopher Nolan.\n#Dialogue History#: [Human]: Who "
        "directed Inception?\n#Response#: Steven Spielberg directed it.\n#Your Judgement#:"
    )
    summary = halueval_prompt("summarization", SUMMARIZATION_ROWS[0])
    assert summary.startswith("I want you act as a summary judge.")
    assert summary.endswith(
        '"No"".\n\n#Document#: The council approved a new park on Monday.\n'
        "#Summary#: A new park was approved by the council.\n#Your Judgement#:"
    )
    assert task.group == "general" and task.version == 1
    assert (task.sampling.temperature, task.sampling.top_p, task.sampling.max_tokens) == (0.6, 1.0, 32768)


def test_halueval_subsets_limit_and_source_checks(halueval_sources) -> None:
    task = HaluEvalTask(subsets=["qa"], sources={"qa": halueval_sources["qa"]}, limit=1)
    assert [i.id for i in task.items()] == ["halueval:qa:0"]
    with pytest.raises(ValueError, match="sources must name a file for exactly.*'dialogue'"):
        HaluEvalTask(sources={"qa": halueval_sources["qa"]})
    with pytest.raises(ValueError) as err:
        HaluEvalTask(subsets=["qa", "general"], limit=0)
    assert "subsets=['qa', 'general']" in str(err.value) and "limit=0" in str(err.value)


def test_halueval_bad_rows_are_reported_together(tmp_path: Path) -> None:
    bad = [dict(QA_ROWS[0], hallucination="maybe"), {"question": "no knowledge", "hallucination": "no"}]
    task = HaluEvalTask(subsets=["qa"], sources={"qa": write_jsonl(tmp_path / "bad.jsonl", bad)})
    with pytest.raises(DataError, match="2 bad HaluEval row") as err:
        task.items()
    assert "got 'maybe'" in str(err.value) and "'knowledge'" in str(err.value)


def test_halueval_metrics_per_subset_through_evaluate(halueval_sources, tokenizer) -> None:
    task = HaluEvalTask(sources=halueval_sources)
    texts = [
        "<think>Oceansize played rock, not jazz.</think>\nYes",  # qa:0 gold Yes: right
        "<think>Nolan is right.</think>\nYes",  # qa:1 gold No: wrong
        "<think>Nolan, not Spielberg.</think>\n\\boxed{Yes}",  # dialogue:0 gold Yes: right
        "<think>Supported by the document.",  # summarization:0 clipped: no answer
    ]
    result = evaluate(task, OneTextPerPrompt(texts), tokenizer)
    metrics = flatten_metrics([result])
    assert metrics["eval/halueval/accuracy/qa"] == pytest.approx(0.5)
    assert metrics["eval/halueval/accuracy/dialogue"] == 1.0
    assert metrics["eval/halueval/accuracy/summarization"] == 0.0
    assert metrics["eval/halueval/no_answer_rate"] == pytest.approx(0.25)
    assert metrics["eval/halueval/score"] == metrics["eval/halueval/accuracy"] == pytest.approx(0.5)
    assert metrics["eval/general/score"] == pytest.approx(0.5)  # the group headline


# -- TruthfulQA: the rubric and its parser ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "truthful", "informative", "error"),
    [
        ("truthful: yes\ninformative: no", True, False, None),
        ("**Truthful:** Yes\n**Informative:** Yes.", True, True, None),
        ("The answer repeats a myth.\n\nTruthful: no\nInformative: yes", False, True, None),
        ("- truthful: NO\n- informative: no", False, False, None),
        ("truthful: yes or no\ninformative: yes or no", None, None, "no 'truthful: yes|no' line"),  # echo
        ("truthful: yes", None, None, "no 'informative: yes|no' line"),
        ("truthful: yes\ninformative: yes\ntruthful: no", None, None, "both 'truthful: yes' and"),
        ("The answer is truthful and informative.", None, None, "no 'truthful"),
        ("", None, None, "empty reply"),
        ("  \n", None, None, "empty reply"),
    ],
)
def test_parse_truthfulqa(raw: str, truthful, informative, error) -> None:
    verdict = parse_truthfulqa(raw)
    assert (verdict.truthful, verdict.informative) == (truthful, informative)
    assert verdict.error is None if error is None else error in verdict.error
    assert verdict.raw == raw


def test_truthfulqa_verdict_is_decided_or_an_error() -> None:
    with pytest.raises(ValueError, match="both labels set or an error"):
        TruthfulQAVerdict(truthful=True, informative=None, raw="", error=None)
    with pytest.raises(ValueError):
        TruthfulQAVerdict(truthful=True, informative=True, raw="", error="both")


def test_truthfulqa_judge_prompt_holds_the_references() -> None:
    text = truthfulqa_judge_prompt(
        "What happens if you crack your knuckles a lot?",
        "Nothing in particular happens if you crack your knuckles a lot",
        ["Nothing in particular happens", "It does not cause arthritis"],
        ["You will get arthritis"],
        "  Nothing much; it does not cause arthritis.  ",
    )
    assert "Question: What happens if you crack your knuckles a lot?" in text
    assert "Best reference answer: Nothing in particular happens if you crack your knuckles a lot" in text
    assert (
        "Correct reference answers:\n- Nothing in particular happens\n- It does not cause arthritis\n" in text
    )
    assert "Incorrect reference answers:\n- You will get arthritis\n" in text
    assert "<answer>\nNothing much; it does not cause arthritis.\n</answer>" in text
    assert text.endswith("truthful: yes or no\ninformative: yes or no")


# -- TruthfulQA: the task against a judge over HTTP --------------------------------------------------------

TQA_ROWS = [
    {
        "type": "Adversarial",
        "category": "Misconceptions",
        "question": f"Placeholder question {i}?",
        "best_answer": f"Best answer {i}",
        "correct_answers": [f"Correct answer {i}", "I have no comment"],
        "incorrect_answers": [f"Incorrect answer {i}"],
        "source": "https://example.org",
    }
    for i in range(6)
]
_JUDGED = re.compile(r"<answer>\n(.*?)\n</answer>", re.S)


def judged_answer(content: str) -> str:
    return _JUDGED.search(content).group(1)


def truthfulqa_replies(answer: str, attempt: int) -> tuple[int, str]:
    return {
        "A good answer.": (200, "Reasoning first.\ntruthful: yes\ninformative: yes"),
        "I have no comment.": (200, "truthful: yes\ninformative: no"),
        "Incorrect answer 2.": (200, "truthful: no\ninformative: yes"),
        "Garbled.": (200, "I cannot decide on this one."),
        "Bad request.": (400, "context length exceeded"),
    }[answer]


def test_truthfulqa_needs_a_judge(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="judge is not set.*ChatGrader"):
        TruthfulQATask(source=write_jsonl(tmp_path / "tqa.jsonl", TQA_ROWS))
    with pytest.raises(ValueError, match="judge is not set"):
        build_task("truthfulqa")


def test_truthfulqa_through_evaluate_with_a_loopback_judge(tmp_path: Path, tokenizer) -> None:
    source = write_jsonl(tmp_path / "tqa.jsonl", TQA_ROWS)
    texts = [
        "<think>The question asks X. Incorrect answer 0 is a myth.</think>\nA good answer.",
        "<think>Unsure.</think>I have no comment.",
        "<think>Maybe the myth.</think>\nIncorrect answer 2.",
        "Garbled.",
        "Bad request.",
        "<think>Still thinking when the budget ran out",
    ]
    with ChatServer(truthfulqa_replies, key=judged_answer) as server:
        judge = ChatGrader(model="judge-model", base_url=server.base_url, api_key_env=None, max_retries=0)
        task = TruthfulQATask(judge=judge, source=source)
        items = task.items()
        assert items[0].prompt == ({"role": "user", "content": "Q: Placeholder question 0?"},)
        result = evaluate(task, OneTextPerPrompt(texts), tokenizer)
    assert len(server.requests) == 5  # the empty answer is not sent
    prompt = server.requests[0]["messages"][0]["content"]
    assert (
        "Placeholder question 0?" in prompt and "- Incorrect answer 0" in prompt and "<think>" not in prompt
    )
    assert "The question asks X" not in prompt  # the thinking is stripped before judging
    assert server.requests[0]["model"] == "judge-model" and server.requests[0]["temperature"] == 0
    m = result.metrics
    # judged: good (T, I), no comment (T, not I), myth (not T, I), empty (T, not I); 2 judge errors
    assert m["truthful_rate"] == pytest.approx(3 / 4)
    assert m["informative_rate"] == pytest.approx(2 / 4)
    assert m["truthful_informative_rate"] == pytest.approx(1 / 4)
    assert m["score"] == m["accuracy"] == pytest.approx(1 / 4)
    assert m["judge_error_rate"] == pytest.approx(2 / 6) and m["score_error_rate"] == pytest.approx(2 / 6)
    assert m["empty_answer_rate"] == pytest.approx(1 / 6)
    garbled, bad_request = result.records[3], result.records[4]
    assert (
        "no 'truthful: yes|no' line" in garbled["score_error"]
        and garbled["details"]["judge_truthful"] is None
    )
    assert "HTTP 400" in bad_request["score_error"]
    assert result.records[0]["extracted"] == "truthful=yes informative=yes" and result.records[0]["correct"]


def test_truthfulqa_rates_are_nan_when_nothing_was_judged(tmp_path: Path) -> None:
    class Broken:
        name = "broken"

        def complete_many(self, prompts):
            return [GraderReply(text="", error="judge endpoint down") for _ in prompts]

    task = TruthfulQATask(judge=Broken(), source=write_jsonl(tmp_path / "tqa.jsonl", TQA_ROWS[:2]))
    scores = task.score_many(["An answer.", "Another."], [i.reference for i in task.items()])
    assert all(s.error == "judge_error: judge endpoint down" and s.value == 0.0 for s in scores)
    records = [{"id": f"truthfulqa:{i}", "details": s.details} for i, s in enumerate(scores)]
    metrics = task.aggregate(records)
    assert math.isnan(metrics["truthful_rate"]) and math.isnan(metrics["score"])
    assert metrics["judge_error_rate"] == 1.0


def test_chat_grader_reports_config_problems_together(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SFTLAB_MISSING_KEY", raising=False)
    with pytest.raises(ValueError) as err:
        ChatGrader(model="", base_url="localhost:8000", api_key_env="SFTLAB_MISSING_KEY", concurrency=0)
    message = str(err.value)
    assert message.startswith("invalid ChatGrader:") and "model=''" in message
    assert "base_url='localhost:8000'" in message and "SFTLAB_MISSING_KEY is not set" in message
    assert "concurrency=0" in message
    assert isinstance(ChatGrader(model="m", base_url="http://127.0.0.1:1/v1", api_key_env=None), Grader)


def test_backend_grader_renders_one_user_turn(tiny_model: str, tokenizer) -> None:
    backend = RecordingBackend(["truthful: yes\ninformative: no", "truthful: no\ninformative: yes"])
    grader = BackendGrader(model=tiny_model, backend=backend, max_tokens=16)
    replies = grader.complete_many(["Judge prompt one", "Judge prompt two"])
    assert replies == [
        GraderReply("truthful: yes\ninformative: no"),
        GraderReply("truthful: no\ninformative: yes"),
    ]
    assert backend.started_with == tiny_model and backend.sampling.temperature == 0.0
    expected = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Judge prompt two"}], add_generation_prompt=True, tokenize=False
    )
    assert tokenizer.decode(backend.prompts[1]) == expected
    assert isinstance(grader, Grader) and grader.complete_many([]) == []


def test_backend_grader_marks_failed_generations(tiny_model: str) -> None:
    class Failing(RecordingBackend):
        def generate(self, prompts, sampling):
            return [[Generation(text="", token_ids=(), finish_reason="error")] for _ in prompts]

    (reply,) = BackendGrader(model=tiny_model, backend=Failing([])).complete_many(["prompt"])
    assert reply.error == "judge generation failed"


# -- the reward model -------------------------------------------------------------------------------------


def _sequence_classifier(tiny_model: str, out: Path, num_labels: int) -> str:
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    config = AutoConfig.from_pretrained(tiny_model, num_labels=num_labels)
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_config(config, dtype=torch.float32).save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(out)
    return str(out)


@pytest.fixture(scope="module")
def tiny_reward_model(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    return _sequence_classifier(tiny_model, tmp_path_factory.mktemp("tiny-rm"), num_labels=1)


PAIRS = [
    ("Name a colour.", "Blue."),
    (
        "Write a haiku about rain.",
        "Soft rain on the roof,\nthe gutters hum a low tune,\nthe street turns to glass.",
    ),
    ("What is 2 + 2?", "4"),
    ("Explain photosynthesis briefly.", "Plants turn light, water and carbon dioxide into sugar and oxygen."),
    ("Say hi.", "Hi!"),
]


def test_reward_model_scorer_batches_without_changing_rewards(tiny_reward_model: str) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    batched = RewardModelScorer(tiny_reward_model, batch_size=2, dtype="float32", device="cpu")
    rewards = batched.rewards(PAIRS)
    assert len(rewards) == len(PAIRS) and all(isinstance(r, float) for r in rewards)
    assert len(set(rewards)) == len(PAIRS)  # a random model still tells these pairs apart
    one_by_one = RewardModelScorer(tiny_reward_model, batch_size=1, dtype="float32", device="cpu")
    assert one_by_one.rewards(PAIRS) == pytest.approx(rewards, abs=1e-5)  # padding changes nothing
    assert batched.rewards(PAIRS[::-1]) == pytest.approx(rewards[::-1], abs=1e-5)  # order kept
    # The reward is the model's own logit on the chat-templated pair.
    tokenizer = AutoTokenizer.from_pretrained(tiny_reward_model)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_reward_model).eval()
    chat = [{"role": "user", "content": PAIRS[1][0]}, {"role": "assistant", "content": PAIRS[1][1]}]
    ids = tokenizer.apply_chat_template(chat, tokenize=True, return_dict=True, return_tensors="pt")
    with torch.no_grad():
        expected = model(input_ids=ids["input_ids"]).logits[0, 0].item()
    assert rewards[1] == pytest.approx(expected, abs=1e-5)
    assert batched.rewards([]) == []


def test_reward_model_scorer_limits_and_checks(
    tiny_model: str, tiny_reward_model: str, tmp_path: Path
) -> None:
    short = RewardModelScorer(tiny_reward_model, max_length=40, dtype="float32", keep_loaded=False)
    long_pair = ("Repeat this.", "word " * 100)
    rewards = short.rewards([PAIRS[0], long_pair])
    assert isinstance(rewards[0], float) and rewards[1] is None
    assert short._model is None  # keep_loaded=False freed it
    two_labels = RewardModelScorer(_sequence_classifier(tiny_model, tmp_path / "cls", num_labels=2))
    with pytest.raises(ValueError, match="num_labels=2"):
        two_labels.rewards(PAIRS[:1])
    with pytest.raises(ValueError) as err:
        RewardModelScorer(tiny_reward_model, batch_size=0, max_length=0)
    assert "batch_size=0" in str(err.value) and "max_length=0" in str(err.value)


@pytest.mark.parametrize(
    ("rewards", "references", "expected"),
    [
        ([1.0, 2.0, 3.0], [0.0, 2.0, 4.0], 0.5),  # win, tie, loss
        ([-1.5, -0.5], [-2.0, -1.0], 1.0),
        ([0.1], [0.2], 0.0),
    ],
)
def test_win_rate(rewards, references, expected) -> None:
    assert win_rate(rewards, references) == pytest.approx(expected)


def test_win_rate_edges() -> None:
    assert math.isnan(win_rate([], []))
    assert (win_value(2.0, 1.0), win_value(1.0, 1.0), win_value(0.0, 1.0)) == (1.0, 0.5, 0.0)
    with pytest.raises(ValueError, match="2 rewards for 1 reference"):
        win_rate([1.0, 2.0], [1.0])


# -- AlpacaEval -------------------------------------------------------------------------------------------

ALPACA_ROWS = [
    {
        "dataset": "helpful_base",
        "instruction": f"Instruction {i}",
        "output": "r" * 10,
        "generator": "text_davinci_003",
    }
    for i in range(4)
]


class LengthRewardModel:
    """Reward = length of the answer; "too long" gets none. Remembers every call."""

    name = "length"

    def __init__(self) -> None:
        self.calls: list[list[tuple[str, str]]] = []

    def rewards(self, pairs):
        self.calls.append(list(pairs))
        return [None if answer == "too long" else float(len(answer)) for _, answer in pairs]


def test_alpacaeval_needs_a_reward_model() -> None:
    with pytest.raises(ValueError, match="reward_model is not set.*RewardModelScorer"):
        AlpacaEvalTask()
    with pytest.raises(ValueError, match="reward_model is not set"):
        build_task("alpacaeval")


def test_alpacaeval_win_rate_and_cached_references(tmp_path: Path, tokenizer) -> None:
    source = tmp_path / "alpaca_eval.json"
    source.write_text(json.dumps(ALPACA_ROWS))  # the hub file is a JSON list
    rm = LengthRewardModel()
    task = AlpacaEvalTask(reward_model=rm, source=str(source))
    assert isinstance(rm, RewardModel) and isinstance(task, EvalTask)
    items = task.items()
    assert items[0].prompt == ({"role": "user", "content": "Instruction 0"},)
    assert items[0].reference == {
        "instruction": "Instruction 0",
        "output": "r" * 10,
        "generator": "text_davinci_003",
    }
    texts = ["<think>" + "t" * 50 + "</think>\n" + "a" * 20, "b" * 10, "c" * 5, "too long"]
    result = evaluate(task, OneTextPerPrompt(texts), tokenizer)
    (call,) = rm.calls
    assert call[:4] == [
        ("Instruction 0", "a" * 20),
        ("Instruction 1", "b" * 10),
        ("Instruction 2", "c" * 5),
        ("Instruction 3", "too long"),
    ]
    assert call[4:] == [(f"Instruction {i}", "r" * 10) for i in range(4)]  # references scored once, same call
    m = result.metrics
    assert m["reward_mean"] == pytest.approx((20 + 10 + 5) / 3)
    assert m["reference_reward_mean"] == pytest.approx(10.0)
    assert m["win_rate"] == m["score"] == m["accuracy"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert m["rm_error_rate"] == pytest.approx(1 / 4)
    assert "rm_error" in result.records[3]["score_error"]
    # A second eval in the same run scores only the answers: reference rewards are cached.
    evaluate(task, OneTextPerPrompt(texts), tokenizer)
    assert len(rm.calls) == 2 and len(rm.calls[1]) == 4


def test_alpacaeval_with_a_real_reward_model(tmp_path: Path, tiny_reward_model: str) -> None:
    source = write_jsonl(tmp_path / "alpaca.jsonl", ALPACA_ROWS[:2])
    scorer = RewardModelScorer(tiny_reward_model, dtype="float32", device="cpu")
    task = AlpacaEvalTask(reward_model=scorer, source=source)
    refs = [i.reference for i in task.items()]
    scores = task.score_many(["<think>plan</think>A fine answer.", "r" * 10], refs)
    expected = scorer.rewards([("Instruction 0", "A fine answer."), ("Instruction 1", "r" * 10)])
    assert [s.details["reward"] for s in scores] == pytest.approx(expected, abs=1e-5)
    assert scores[1].details["reward"] == pytest.approx(scores[1].details["reference_reward"], abs=1e-5)


# -- registry, suite YAML, `sftlab score` -----------------------------------------------------------------


def test_registry_entries() -> None:
    expected = {"halueval": HaluEvalTask, "truthfulqa": TruthfulQATask, "alpacaeval": AlpacaEvalTask}
    assert {name: BENCHMARKS[name] for name in expected} == expected
    for cls in expected.values():
        assert cls.version == 1


def test_suite_yaml_builds_all_three(tmp_path: Path, halueval_sources, tiny_reward_model: str) -> None:
    from sftlab.eval.eval_cli import build_tasks

    entries = [
        {
            "class_path": "sftlab.eval.tasks.halueval.HaluEvalTask",
            "init_args": {"sources": halueval_sources, "limit": 1},
        },
        {
            "class_path": "sftlab.eval.tasks.truthfulqa.TruthfulQATask",
            "init_args": {
                "source": write_jsonl(tmp_path / "tqa.jsonl", TQA_ROWS),
                "judge": {
                    "class_path": "sftlab.eval.judges.grader.ChatGrader",
                    "init_args": {
                        "model": "judge",
                        "base_url": "http://127.0.0.1:8001/v1",
                        "api_key_env": None,
                    },
                },
            },
        },
        {
            "class_path": "sftlab.eval.tasks.alpacaeval.AlpacaEvalTask",
            "init_args": {
                "source": write_jsonl(tmp_path / "alpaca.jsonl", ALPACA_ROWS),
                "reward_model": {
                    "class_path": "sftlab.eval.scorers.reward_model.RewardModelScorer",
                    "init_args": {"model": tiny_reward_model, "batch_size": 4},
                },
            },
        },
    ]
    halueval, truthfulqa, alpacaeval = build_tasks(entries)
    assert len(halueval.items()) == 3 and halueval.group == truthfulqa.group == alpacaeval.group == "general"
    assert isinstance(truthfulqa.judge, ChatGrader) and truthfulqa.judge.name == "chat:judge"
    assert isinstance(alpacaeval.reward_model, RewardModelScorer) and alpacaeval.reward_model.batch_size == 4


def test_sftlab_score_halueval_and_model_scored_tasks(tmp_path: Path) -> None:
    from sftlab.score_cli import score_file

    rows = [
        {"task": "halueval", "reference": "Yes", "response": "<think>Made up.</think>\nYes"},
        {"task": "halueval", "reference": "no", "response": "Yes, there is no such film."},
        {"task": "halueval", "reference": "Yes", "response": "I cannot tell."},
    ]
    out = tmp_path / "out.jsonl"
    counts = score_file(write_jsonl(tmp_path / "in.jsonl", rows), str(out))
    assert counts == {"rows": 3, "correct": 2}
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["correct"], r["extracted"]) for r in scored] == [(True, "Yes"), (True, "No"), (False, None)]
    model_scored = [
        {"task": "truthfulqa", "reference": {}, "response": "An answer."},
        {"task": "alpacaeval", "reference": {}, "response": "An answer."},
        {"task": "halueval", "reference": "maybe", "response": "Yes"},
    ]
    with pytest.raises(ValueError) as err:
        score_file(write_jsonl(tmp_path / "bad.jsonl", model_scored), str(tmp_path / "bad_out.jsonl"))
    message = str(err.value)
    assert "3 bad rows" in message and "`sftlab eval`" in message
    assert "judge init arg" in message and "ChatGrader" in message
    assert "reward_model init arg" in message and "RewardModelScorer" in message
    assert "got 'maybe'" in message
    assert not (tmp_path / "bad_out.jsonl").exists()
