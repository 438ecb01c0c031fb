"""IFEval: every instruction checker passes and fails on realistic answers, strict vs loose, the thinking is
stripped, bad references are named, the task loads a local file in the hub schema, its aggregates reach
the general headline through `evaluate`, and `sftlab score` scores ifeval rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sftlab.cli import main
from sftlab.data.example import DataError
from sftlab.eval.evaluate import evaluate, flatten_metrics
from sftlab.eval.registry import build_task
from sftlab.eval.scorers.ifeval import loose_variants, score_ifeval
from sftlab.eval.scorers.ifeval_instructions import INSTRUCTIONS, count_sentences
from sftlab.eval.task import EvalTask
from sftlab.eval.types import Generation
from sftlab.scorers import check_reference

# Every kwarg name the hub dataset's rows carry; a row sets its instruction's and leaves the rest None.
HUB_KWARGS = (
    "num_highlights",
    "relation",
    "num_words",
    "num_placeholders",
    "prompt_to_repeat",
    "num_paragraphs",
    "nth_paragraph",
    "first_word",
    "section_spliter",
    "num_sections",
    "capital_relation",
    "capital_frequency",
    "keywords",
    "forbidden_words",
    "keyword",
    "frequency",
    "letter",
    "let_relation",
    "let_frequency",
    "postscript_marker",
    "end_phrase",
    "num_bullets",
    "language",
    "num_sentences",
)


def hub_kwargs(**given) -> dict:
    return {name: given.get(name) for name in HUB_KWARGS}


def ref(instruction_id: str, **kwargs) -> dict:
    return {"instruction_id_list": [instruction_id], "kwargs": [hub_kwargs(**kwargs)]}


# (instruction id, kwargs, answer that follows it, answer that does not)
TABLE = [
    (
        "keywords:existence",
        {"keywords": ["python", "snake"]},
        "Pythons are large snakes found in Asia and Africa.",
        "Pythons are large constrictors found in Asia and Africa.",
    ),
    (
        "keywords:frequency",
        {"keyword": "data", "frequency": 3, "relation": "at least"},
        "Data beats opinions. More data helps. Collect data daily.",
        "Data beats opinions. More data helps.",
    ),
    (
        "keywords:frequency",
        {"keyword": "very", "frequency": 2, "relation": "less than"},
        "It was very cold.",
        "It was very, very cold.",
    ),
    (
        "keywords:forbidden_words",
        {"forbidden_words": ["good", "bad"]},
        "The food was goodish and the badminton match was fun.",
        "It was a Good day overall.",
    ),
    (
        "keywords:letter_frequency",
        {"letter": "z", "let_frequency": 2, "let_relation": "less than"},
        "A lazy afternoon by the lake.",
        "Zebras zigzag across the plain.",
    ),
    (
        "language:response_language",
        {"language": "fr"},
        "Bonjour, je m'appelle Marie et j'habite à Paris depuis dix ans avec ma famille.",
        "Hello, my name is Marie and I have lived in Paris for ten years with my family.",
    ),
    (
        "length_constraints:number_sentences",
        {"num_sentences": 3, "relation": "less than"},
        "Dr. Smith arrived at noon. He was late, e.g. by an hour.",
        "It rained all day. We stayed in. We played chess!",
    ),
    (
        "length_constraints:number_paragraphs",
        {"num_paragraphs": 2},
        "Tea is soothing.\n***\nCoffee is bracing.",
        "Tea is soothing.\n***\n***\nCoffee is bracing.",
    ),
    (
        "length_constraints:number_paragraphs",
        {"num_paragraphs": 3},
        "Tea is soothing.\n***\nCoffee is bracing.\n***\nWater is essential.",
        "Tea is soothing.\n***\nCoffee is bracing.",
    ),
    (
        "length_constraints:number_words",
        {"num_words": 5, "relation": "at least"},
        "I like green tea a lot.",
        "Green tea, please.",
    ),
    (
        "length_constraints:nth_paragraph_first_word",
        {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "however"},
        'Cats sleep most of the day.\n\n"However, dogs do not."',
        "Cats sleep most of the day.\n\nDogs, however, do not.",
    ),
    (
        "detectable_content:number_placeholders",
        {"num_placeholders": 2},
        "Dear [name], please meet me at [address] tomorrow.",
        "Dear [name], please meet me at the cafe tomorrow.",
    ),
    (
        "detectable_content:postscript",
        {"postscript_marker": "P.P.S"},
        "See you soon.\n\nP.P.S. Bring snacks.",
        "See you soon.\n\nP.S. Bring snacks.",
    ),
    (
        "detectable_content:postscript",
        {"postscript_marker": "P.S."},
        "See you soon.\n\nP.S. Bring snacks.",
        "See you soon. Bring snacks.",
    ),
    (
        "detectable_format:number_bullet_lists",
        {"num_bullets": 3},
        "Fruit to buy:\n* apples\n* pears\n- plums",
        "Fruit to buy:\n* apples\n* pears",
    ),
    (
        "detectable_format:constrained_response",
        {},
        "After weighing both sides: My answer is maybe.",
        "Maybe, it depends on the weather.",
    ),
    (
        "detectable_format:number_highlighted_sections",
        {"num_highlights": 2},
        "First *boil the water*, then *steep the leaves*.",
        "First *boil the water*, then ** ** steep the leaves.",
    ),
    (
        "detectable_format:multiple_sections",
        {"section_spliter": "Section", "num_sections": 2},
        "Section 1\nWhy tea matters.\nSection 2\nHow to brew it.",
        "Section 1\nWhy tea matters and how to brew it.",
    ),
    (
        "detectable_format:json_format",
        {},
        '```json\n{"name": "Ada", "born": 1815}\n```',
        'The record is {"name": "Ada", "born": 1815}.',
    ),
    ("detectable_format:title", {}, "<<Ode to Tea>>\nSteam rises slowly.", "<< >>\nSteam rises slowly."),
    (
        "combination:two_responses",
        {},
        "Tea is calming.\n******\nCoffee is energising.",
        "Tea is calming.\n******\nTea is calming.",
    ),
    (
        "combination:repeat_prompt",
        {"prompt_to_repeat": "Write a haiku about tea."},
        "Write a haiku about tea.\nSteam curls from the cup",
        "Sure! Write a haiku about tea.\nSteam curls from the cup",
    ),
    (
        "startend:end_checker",
        {"end_phrase": "Any other questions?"},
        "That covers the basics. Any other questions?",
        "Any other questions? Let me know.",
    ),
    (
        "startend:quotation",
        {},
        '"Stay curious and keep learning."',
        "Stay curious and keep learning.",
    ),
    (
        "change_case:capital_word_frequency",
        {"capital_frequency": 2, "capital_relation": "at least"},
        "This step is VERY IMPORTANT for safety.",
        "This step is Very Important, OK?",
    ),
    (
        "change_case:english_capital",
        {},
        "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG NEAR THE RIVER.",
        "The quick brown fox jumps over the lazy dog near the river.",
    ),
    (
        "change_case:english_lowercase",
        {},
        "the quick brown fox jumps over the lazy dog near the river.",
        "The quick brown fox jumps over the lazy dog near the river.",
    ),
    ("punctuation:no_comma", {}, "Tea is best served hot.", "Well, tea is best served hot."),
]


def test_the_table_covers_every_instruction() -> None:
    assert len(INSTRUCTIONS) == 25
    assert {row[0] for row in TABLE} == set(INSTRUCTIONS)


@pytest.mark.parametrize(("instruction_id", "kwargs", "follows", "breaks"), TABLE, ids=[r[0] for r in TABLE])
def test_instruction_checkers(instruction_id, kwargs, follows, breaks) -> None:
    passed = score_ifeval(follows, ref(instruction_id, **kwargs))
    failed = score_ifeval(breaks, ref(instruction_id, **kwargs))
    assert (passed.correct, passed.value, passed.details["strict"]) == (True, 1.0, [True])
    assert (failed.correct, failed.value, failed.details["strict"]) == (False, 0.0, [False])


def test_text_langdetect_cannot_read_counts_as_followed() -> None:
    # The original's fallback: langdetect raises on text without letters, and the instruction passes.
    assert score_ifeval("12345 67890", ref("language:response_language", language="de")).correct


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("Hello there. How are you? I am fine!", 3),
        ("Dr. Smith went home. He slept.", 2),
        ("Pi is 3.14 exactly. Yes.", 2),
        ('He said "Go." Then he left.', 2),
        ("Wait... what happened? Nothing.", 2),
        ("A title line\n\nthen text without a full stop", 1),
        ("", 0),
    ],
)
def test_regex_sentence_count(text: str, sentences: int) -> None:
    assert count_sentences(text) == sentences


# -- strict vs loose --------------------------------------------------------------------------------------


def test_loose_variants_in_the_original_order() -> None:
    assert loose_variants("Intro:\n*body*\nBye") == [
        "Intro:\n*body*\nBye",
        "Intro:\nbody\nBye",
        "*body*\nBye",
        "Intro:\n*body*",
        "*body*",
        "body\nBye",
        "Intro:\nbody",
        "body",
    ]


@pytest.mark.parametrize(
    ("answer", "instruction_id", "kwargs"),
    [
        ('Here is the JSON:\n{"name": "Ada"}', "detectable_format:json_format", {}),  # first line removed
        ('**"Stay curious."**', "startend:quotation", {}),  # asterisks removed
        (
            "That covers it. Any other questions?\n-- Your assistant",  # last line removed
            "startend:end_checker",
            {"end_phrase": "Any other questions?"},
        ),
    ],
)
def test_loose_passes_what_strict_fails(answer, instruction_id, kwargs) -> None:
    score = score_ifeval(answer, ref(instruction_id, **kwargs))
    assert not score.correct and score.details["strict"] == [False]
    assert score.details["loose"] == [True] and score.details["prompt_loose"] is True


def test_prompt_level_needs_every_instruction() -> None:
    reference = {
        "instruction_id_list": ["punctuation:no_comma", "detectable_format:title"],
        "kwargs": [hub_kwargs(), hub_kwargs()],
    }
    score = score_ifeval("No title here.", reference)
    assert not score.correct and score.details["strict"] == [True, False]
    assert score_ifeval("<<Tea>>\nNo commas here.", reference).correct


# -- thinking ---------------------------------------------------------------------------------------------


def test_the_thinking_is_stripped_before_checking() -> None:
    reference = ref("punctuation:no_comma")
    score = score_ifeval("<think>Hmm, commas, commas.</think>\n\nTea is best served hot.", reference)
    assert score.correct and score.extracted == "Tea is best served hot."
    assert not score_ifeval("<think>No commas.</think>\n\nWell, tea is hot.", reference).correct
    assert score_ifeval("Tea is hot.", reference).correct  # no thinking: the whole text is the answer


def test_the_blank_line_after_thinking_is_not_a_paragraph() -> None:
    reference = ref(
        "length_constraints:nth_paragraph_first_word", num_paragraphs=2, nth_paragraph=1, first_word="tea"
    )
    assert score_ifeval("<think>Plan.</think>\n\nTea first.\n\nThen biscuits.", reference).correct


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        ("<think>Tea is best served hot without commas", "thinking never closed"),
        ("<think>ok</think>\n\n", "empty"),
    ],
)
def test_no_answer_fails_every_instruction(response: str, reason: str) -> None:
    reference = {
        "instruction_id_list": ["punctuation:no_comma", "language:response_language"],
        "kwargs": [{}, {"language": "en"}],
    }
    score = score_ifeval(response, reference)
    assert not score.correct and score.extracted is None
    assert score.details["strict"] == score.details["loose"] == [False, False]
    assert reason in score.details["reason"]


# -- bad references ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "fragments"),
    [
        (ref("keywords:existance", keywords=["tea"]), ["unknown IFEval instruction id 'keywords:existance'"]),
        (ref("keywords:existance"), ["did you mean 'keywords:existence'?", "known ids: keywords:existence"]),
        (ref("keywords:frequency", keyword="tea"), ["missing kwarg 'frequency'", "missing kwarg 'relation'"]),
        (
            ref("length_constraints:number_words", num_words=-1, relation="more than"),
            ["kwarg num_words=-1 must be a non-negative integer", "relation='more than' must be one of"],
        ),
        (
            {"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{"letter": "a"}]},
            ["unknown kwarg letter='a'; it takes none"],
        ),
        (ref("keywords:existence", keywords=["tea (hot"]), ["keywords=['tea (hot']", "does not compile"]),
        (
            ref("keywords:letter_frequency", letter="ab", let_frequency=1, let_relation="at least"),
            ["single letter"],
        ),
        ({"instruction_id_list": "punctuation:no_comma", "kwargs": [{}]}, ["field 'instruction_id_list'"]),
        (
            {"instruction_id_list": ["punctuation:no_comma"], "kwargs": []},
            ["field 'kwargs'", "one object per"],
        ),
        (["punctuation:no_comma"], ["an IFEval reference must be", "instruction_id_list"]),
    ],
)
def test_bad_references_are_named(reference, fragments: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        score_ifeval("Tea.", reference)
    for fragment in fragments:
        assert fragment in str(info.value)
    with pytest.raises(ValueError, match="IFEval"):  # the same message through `sftlab score`'s check
        check_reference("ifeval", reference)


# -- the task ---------------------------------------------------------------------------------------------

ROWS = [
    {
        "key": 1000,
        "prompt": "Describe tea in two sentences. Do not use any commas. End with 'Any other questions?'",
        "instruction_id_list": ["punctuation:no_comma", "startend:end_checker"],
        "kwargs": [hub_kwargs(), hub_kwargs(end_phrase="Any other questions?")],
    },
    {
        "key": 1001,
        "prompt": "Give Ada Lovelace's name and birth year. Wrap your entire output in JSON format.",
        "instruction_id_list": ["detectable_format:json_format"],
        "kwargs": [hub_kwargs()],
    },
]
FOLLOWS_ALL = "<think>Hmm, no commas allowed.</think>\n\nTea is a brewed leaf. Any other questions?"
LOOSE_ONLY = 'Here you go:\n```json\n{"name": "Ada Lovelace", "born": 1815}\n```'


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_task_loads_a_local_file_in_the_hub_schema(tmp_path: Path) -> None:
    task = build_task("ifeval", source=write_jsonl(tmp_path / "ifeval.jsonl", ROWS))
    assert isinstance(task, EvalTask) and (task.name, task.group, task.version) == ("ifeval", "general", 1)
    assert (task.sampling.n, task.sampling.temperature, task.sampling.top_p) == (1, 0.0, 1.0)
    items = task.items()
    assert [i.id for i in items] == ["ifeval:1000", "ifeval:1001"]
    assert items[0].prompt == ({"role": "user", "content": ROWS[0]["prompt"]},)
    assert items[0].reference["instruction_id_list"] == ROWS[0]["instruction_id_list"]
    assert task.score(FOLLOWS_ALL, items[0].reference).correct
    assert not task.score(LOOSE_ONLY, items[1].reference).correct
    assert len(build_task("ifeval", source=str(tmp_path / "ifeval.jsonl"), limit=1).items()) == 1


def test_bad_rows_are_all_reported(tmp_path: Path) -> None:
    rows = [
        {**ROWS[0], "instruction_id_list": ["punctuation:no_coma", "startend:end_checker"]},
        {**ROWS[1], "prompt": ""},
        ROWS[1],
        ROWS[1],
    ]
    with pytest.raises(DataError) as info:
        build_task("ifeval", source=write_jsonl(tmp_path / "bad.jsonl", rows)).items()
    message = str(info.value)
    assert message.startswith("3 bad ifeval row(s)")
    assert (
        "bad.jsonl:1: invalid IFEval reference: unknown IFEval instruction id 'punctuation:no_coma'"
        in message
    )
    assert "bad.jsonl:2: missing or empty 'prompt'" in message
    assert "bad.jsonl:4: duplicate key 'ifeval:1001'" in message


class ScriptedBackend:
    """Returns one scripted response per prompt, in order."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts

    def generate(self, prompts, sampling):
        assert len(prompts) == len(self.texts)
        return [[Generation(text=t, token_ids=(1, 2, 3), finish_reason="stop")] for t in self.texts]


def test_evaluate_reports_the_four_accuracies_and_the_general_headline(tmp_path: Path, tokenizer) -> None:
    task = build_task("ifeval", source=write_jsonl(tmp_path / "ifeval.jsonl", ROWS))
    result = evaluate(task, ScriptedBackend([FOLLOWS_ALL, LOOSE_ONLY]), tokenizer)  # type: ignore[arg-type]
    flat = flatten_metrics([result])
    assert flat["eval/ifeval/prompt_level_strict_acc"] == pytest.approx(1 / 2)
    assert flat["eval/ifeval/inst_level_strict_acc"] == pytest.approx(2 / 3)
    assert flat["eval/ifeval/prompt_level_loose_acc"] == flat["eval/ifeval/inst_level_loose_acc"] == 1.0
    assert flat["eval/ifeval/inst_level_strict_acc/detectable_format"] == 0.0
    assert flat["eval/ifeval/inst_level_strict_acc/punctuation"] == 1.0
    assert flat["eval/ifeval/accuracy"] == flat["eval/general/score"] == pytest.approx(1 / 2)
    assert result.records[0]["extracted"] == "Tea is a brewed leaf. Any other questions?"
    json.dumps(result.records)


def test_a_sample_that_failed_to_score_follows_no_instruction(tmp_path: Path) -> None:
    task = build_task("ifeval", source=write_jsonl(tmp_path / "ifeval.jsonl", ROWS))
    scored = task.score(FOLLOWS_ALL, task.items()[0].reference)
    records = [
        {"id": "ifeval:1000", "details": scored.details},
        {"id": "ifeval:1001", "details": {}, "score_error": "RuntimeError: boom"},
    ]
    metrics = task.aggregate(records)
    assert metrics["prompt_level_strict_acc"] == metrics["prompt_level_loose_acc"] == pytest.approx(1 / 2)
    assert metrics["inst_level_strict_acc"] == pytest.approx(2 / 3) and metrics["score"] == pytest.approx(
        1 / 2
    )


# -- sftlab score -----------------------------------------------------------------------------------------


def test_score_command_scores_ifeval_rows(tmp_path: Path, capsys) -> None:
    rows = [
        {
            "task": "ifeval",
            "reference": {k: ROWS[0][k] for k in ("instruction_id_list", "kwargs")},
            "response": r,
        }
        for r in (FOLLOWS_ALL, "Tea, hot. Any other questions?", "<think>Clipped, mid-thought")
    ]
    src, dst = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["score", "--input", str(src), "--output", str(dst)]) == 0
    out = [json.loads(line) for line in dst.read_text().splitlines()]
    assert [o["correct"] for o in out] == [True, False, False]
    assert [o["extracted"] for o in out] == [
        "Tea is a brewed leaf. Any other questions?",
        "Tea, hot. Any other questions?",
        None,
    ]

    bad = {"task": "ifeval", "reference": {"instruction_id_list": ["startend:end_checker"], "kwargs": [{}]}}
    src.write_text(json.dumps({**bad, "response": "x"}) + "\n")
    assert main(["score", "--input", str(src), "--output", str(tmp_path / "o.jsonl")]) == 2
    assert "in.jsonl:1: invalid IFEval reference: startend:end_checker: missing kwarg 'end_phrase'" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "o.jsonl").exists()
