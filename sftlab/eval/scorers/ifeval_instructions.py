"""IFEval's 25 verifiable instructions (Zhou et al. 2023, arXiv 2311.07911): one checker per instruction
id, and the kwargs each one reads from a dataset row.

The checks follow the reference implementation, github.com/google-research/google-research
`instruction_following_eval/` (instructions.py @ 3f357bde, instructions_registry.py @ 1d49f2c0,
instructions_util.py @ 5b09c22d): the same regexes, thresholds, quirks and langdetect fallbacks. Three
deliberate differences, each because the original needs NLTK data that cannot be downloaded offline:

* `count_sentences` is a regex splitter, not NLTK's punkt: a sentence ends at a run of `.`, `!` or `?`
  (closing quotes/brackets may follow) before whitespace, except after a common abbreviation (`Dr.`,
  `e.g.`) or a one-letter initial, and an ellipsis before a lowercase word. Like punkt, line breaks alone
  do not end a sentence. Counts can differ from punkt's on unusual text.
* `change_case:capital_word_frequency` counts `\\w+(?:-\\w+)*` tokens (hyphenated words stay one word, as the
  original's comment asks) instead of NLTK's Treebank `word_tokenize`; contractions split in both
  ("DON'T" is two all-capital tokens).
* langdetect is seeded (`DetectorFactory.seed = 0`) so a verdict never changes between runs; the original
  leaves it unseeded. As in the original, text langdetect cannot read counts as following the instruction.

Keywords, forbidden words, postscript markers and section splitters are used as regular expressions, as the
original does (a keyword "Dr." also matches "Drs"); `bind` rejects one that does not compile.
Knows nothing about thinking, prompts, backends or Lightning.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

RELATIONS = ("less than", "at least")
CONSTRAINED_RESPONSES = ("My answer is yes.", "My answer is no.", "My answer is maybe.")

# -- kwarg converters: return the value the checker uses, or raise ValueError saying what was expected ---


def _count(value: Any) -> int:
    if isinstance(value, float) and value.is_integer():  # Parquet/pandas may store ints as floats
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("must be a non-negative integer")
    return value


def _position(value: Any) -> int:
    value = _count(value)
    if value < 1:
        raise ValueError("must be a paragraph number >= 1")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value


def _pattern(value: Any) -> str:
    value = _text(value)
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"is used as a regular expression and does not compile ({exc})") from None
    return value


def _patterns(value: Any) -> list[str]:
    if isinstance(value, str) or not isinstance(value, list | tuple) or not value:
        raise ValueError("must be a non-empty list of strings")
    return [_pattern(v) for v in value]


def _relation(value: Any) -> str:
    if value not in RELATIONS:
        raise ValueError(f"must be one of {RELATIONS}")
    return value


def _letter(value: Any) -> str:
    if not isinstance(value, str) or len(value.strip()) != 1:
        raise ValueError("must be a single letter")
    return value.strip().lower()


# -- shared helpers ----------------------------------------------------------------------------------

_ABBREVIATIONS = frozenset(
    {
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "st",
        "jr",
        "sr",
        "vs",
        "etc",
        "e.g",
        "i.e",
        "inc",
        "ltd",
        "a.m",
        "p.m",
        "u.s",
        "u.k",
    }
)
_SENTENCE_END = re.compile(r"([.!?]+)[\"'\u2019\u201d)\]]*\s+(?=(\S))")
_WORD = re.compile(r"\w+")
_CAPITAL_WORD_TOKEN = re.compile(r"\w+(?:-\w+)*")


def _compare(count: int, relation: str, threshold: int) -> bool:
    return count < threshold if relation == "less than" else count >= threshold


def count_sentences(text: str) -> int:
    """Sentences in `text` by the regex rules in the module docstring (the original uses NLTK punkt)."""
    text = text.strip()
    if not text:
        return 0
    count = 1
    for match in _SENTENCE_END.finditer(text):
        ends, following = match.group(1), match.group(2)
        if ends == "." and _is_abbreviation(text[: match.start()]):
            continue
        if ends.startswith("..") and following.islower():  # an ellipsis inside a sentence
            continue
        count += 1
    return count


def _is_abbreviation(before_period: str) -> bool:
    words = before_period.split()
    word = words[-1].lstrip("([\"'") if words else ""
    return word.lower() in _ABBREVIATIONS or (len(word) == 1 and word.isalpha())


def count_words(text: str) -> int:
    """`\\w+` tokens, exactly the original's `nltk.tokenize.RegexpTokenizer(r"\\w+")`."""
    return len(_WORD.findall(text))


def _language_is(text: str, language: str) -> bool:
    """langdetect's verdict; text it cannot read (digits, symbols) counts as `language`, as originally."""
    import langdetect

    langdetect.DetectorFactory.seed = 0
    try:
        return langdetect.detect(text) == language
    except langdetect.LangDetectException:
        return True


# -- the checkers, in the order of the original registry ------------------------------------------------


def _keywords_existence(text: str, *, keywords: list[str]) -> bool:
    return all(re.search(keyword, text, flags=re.IGNORECASE) for keyword in keywords)


def _keyword_frequency(text: str, *, keyword: str, frequency: int, relation: str) -> bool:
    return _compare(len(re.findall(keyword.strip(), text, flags=re.IGNORECASE)), relation, frequency)


def _forbidden_words(text: str, *, forbidden_words: list[str]) -> bool:
    return not any(re.search(rf"\b{word}\b", text, flags=re.IGNORECASE) for word in forbidden_words)


def _letter_frequency(text: str, *, letter: str, let_frequency: int, let_relation: str) -> bool:
    return _compare(text.lower().count(letter), let_relation, let_frequency)


def _response_language(text: str, *, language: str) -> bool:
    return _language_is(text, language)


def _number_sentences(text: str, *, num_sentences: int, relation: str) -> bool:
    return _compare(count_sentences(text), relation, num_sentences)


def _number_paragraphs(text: str, *, num_paragraphs: int) -> bool:
    """Paragraphs split by the markdown divider `***`; an empty one between two dividers fails."""
    paragraphs = re.split(r"\s?\*\*\*\s?", text)
    count = len(paragraphs)
    for index, paragraph in enumerate(paragraphs):
        if not paragraph.strip():
            if index not in (0, len(paragraphs) - 1):
                return False
            count -= 1
    return count == num_paragraphs


def _number_words(text: str, *, num_words: int, relation: str) -> bool:
    return _compare(count_words(text), relation, num_words)


def _nth_paragraph_first_word(text: str, *, num_paragraphs: int, nth_paragraph: int, first_word: str) -> bool:
    """Paragraphs split by blank lines. As in the original, empty paragraphs are not counted but the nth is
    still indexed among all of them, and the first word is read up to the first punctuation mark."""
    paragraphs = re.split(r"\n\n", text)
    count = sum(1 for paragraph in paragraphs if paragraph.strip())
    if nth_paragraph > count or not paragraphs[nth_paragraph - 1].strip():
        return False
    word = paragraphs[nth_paragraph - 1].strip().split()[0].strip().lstrip("'").lstrip('"')
    found = ""
    for char in word:
        if char in {".", ",", "?", "!", "'", '"'}:
            break
        found += char.lower()
    return count == num_paragraphs and found == first_word.lower()


def _number_placeholders(text: str, *, num_placeholders: int) -> bool:
    return len(re.findall(r"\[.*?\]", text)) >= num_placeholders


def _postscript(text: str, *, postscript_marker: str) -> bool:
    marker = postscript_marker.strip()
    if marker == "P.P.S":
        pattern = r"\s*p\.\s?p\.\s?s.*$"
    elif marker == "P.S.":
        pattern = r"\s*p\.\s?s\..*$"
    else:
        pattern = r"\s*" + marker.lower() + r".*$"
    return bool(re.findall(pattern, text.lower(), flags=re.MULTILINE))


def _number_bullet_lists(text: str, *, num_bullets: int) -> bool:
    stars = re.findall(r"^\s*\*[^\*].*$", text, flags=re.MULTILINE)
    dashes = re.findall(r"^\s*-.*$", text, flags=re.MULTILINE)
    return len(stars) + len(dashes) == num_bullets


def _constrained_response(text: str) -> bool:
    return any(option in text.strip() for option in CONSTRAINED_RESPONSES)


def _number_highlighted_sections(text: str, *, num_highlights: int) -> bool:
    """`*x*` and `**x**` spans with non-blank content; a `**x**` counts twice (it matches both), as originally."""
    single = [h for h in re.findall(r"\*[^\n\*]*\*", text) if h.strip("*").strip()]
    double = [
        h for h in re.findall(r"\*\*[^\n\*]*\*\*", text) if h.removeprefix("**").removesuffix("**").strip()
    ]
    return len(single) + len(double) >= num_highlights


def _multiple_sections(text: str, *, section_spliter: str, num_sections: int) -> bool:
    sections = re.split(r"\s?" + section_spliter.strip() + r"\s?\d+\s?", text)
    return len(sections) - 1 >= num_sections


def _json_format(text: str) -> bool:
    text = text.strip()
    for prefix in ("```json", "```Json", "```JSON", "```"):
        text = text.removeprefix(prefix)
    try:
        json.loads(text.removesuffix("```").strip())
    except ValueError:
        return False
    return True


def _title(text: str) -> bool:
    return any(title.lstrip("<").rstrip(">").strip() for title in re.findall(r"<<[^\n]+>>", text))


def _two_responses(text: str) -> bool:
    """Exactly two different non-empty responses separated by `******`, none empty in between."""
    parts = text.split("******")
    responses = []
    for index, part in enumerate(parts):
        if part.strip():
            responses.append(part.strip())
        elif index not in (0, len(parts) - 1):
            return False
    return len(responses) == 2 and responses[0] != responses[1]


def _repeat_prompt(text: str, *, prompt_to_repeat: str) -> bool:
    return text.strip().lower().startswith(prompt_to_repeat.strip().lower())


def _end_checker(text: str, *, end_phrase: str) -> bool:
    return text.strip().strip('"').lower().endswith(end_phrase.strip().lower())


def _capital_word_frequency(text: str, *, capital_frequency: int, capital_relation: str) -> bool:
    capitals = sum(1 for word in _CAPITAL_WORD_TOKEN.findall(text) if word.isupper())
    return _compare(capitals, capital_relation, capital_frequency)


def _english_capital(text: str) -> bool:
    return text.isupper() and _language_is(text, "en")


def _english_lowercase(text: str) -> bool:
    return text.islower() and _language_is(text, "en")


def _no_comma(text: str) -> bool:
    return "," not in text


def _quotation(text: str) -> bool:
    text = text.strip()
    return len(text) > 1 and text[0] == '"' and text[-1] == '"'


# -- the registry --------------------------------------------------------------------------------------

Converter = Callable[[Any], Any]


@dataclass(frozen=True)
class Instruction:
    """A checker and the kwargs it takes (name -> converter that validates and normalises the value)."""

    check: Callable[..., bool]
    kwargs: Mapping[str, Converter]


INSTRUCTIONS: dict[str, Instruction] = {
    "keywords:existence": Instruction(_keywords_existence, {"keywords": _patterns}),
    "keywords:frequency": Instruction(
        _keyword_frequency, {"keyword": _pattern, "frequency": _count, "relation": _relation}
    ),
    "keywords:forbidden_words": Instruction(_forbidden_words, {"forbidden_words": _patterns}),
    "keywords:letter_frequency": Instruction(
        _letter_frequency, {"letter": _letter, "let_frequency": _count, "let_relation": _relation}
    ),
    "language:response_language": Instruction(_response_language, {"language": _text}),
    "length_constraints:number_sentences": Instruction(
        _number_sentences, {"num_sentences": _count, "relation": _relation}
    ),
    "length_constraints:number_paragraphs": Instruction(_number_paragraphs, {"num_paragraphs": _count}),
    "length_constraints:number_words": Instruction(
        _number_words, {"num_words": _count, "relation": _relation}
    ),
    "length_constraints:nth_paragraph_first_word": Instruction(
        _nth_paragraph_first_word, {"num_paragraphs": _count, "nth_paragraph": _position, "first_word": _text}
    ),
    "detectable_content:number_placeholders": Instruction(_number_placeholders, {"num_placeholders": _count}),
    "detectable_content:postscript": Instruction(_postscript, {"postscript_marker": _pattern}),
    "detectable_format:number_bullet_lists": Instruction(_number_bullet_lists, {"num_bullets": _count}),
    "detectable_format:constrained_response": Instruction(_constrained_response, {}),
    "detectable_format:number_highlighted_sections": Instruction(
        _number_highlighted_sections, {"num_highlights": _count}
    ),
    "detectable_format:multiple_sections": Instruction(
        _multiple_sections, {"section_spliter": _pattern, "num_sections": _count}
    ),
    "detectable_format:json_format": Instruction(_json_format, {}),
    "detectable_format:title": Instruction(_title, {}),
    "combination:two_responses": Instruction(_two_responses, {}),
    "combination:repeat_prompt": Instruction(_repeat_prompt, {"prompt_to_repeat": _text}),
    "startend:end_checker": Instruction(_end_checker, {"end_phrase": _text}),
    "change_case:capital_word_frequency": Instruction(
        _capital_word_frequency, {"capital_frequency": _count, "capital_relation": _relation}
    ),
    "change_case:english_capital": Instruction(_english_capital, {}),
    "change_case:english_lowercase": Instruction(_english_lowercase, {}),
    "punctuation:no_comma": Instruction(_no_comma, {}),
    "startend:quotation": Instruction(_quotation, {}),
}


def bind(
    instruction_id: Any, kwargs: Mapping[str, Any] | None
) -> tuple[Callable[[str], bool] | None, list[str]]:
    """(checker with its kwargs bound, problems). A None kwarg is absent, as in the hub dataset, whose
    rows carry every instruction's kwarg names; the checker is None when there is any problem."""
    if not isinstance(instruction_id, str) or instruction_id not in INSTRUCTIONS:
        close = difflib.get_close_matches(str(instruction_id), INSTRUCTIONS, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return None, [
            f"unknown IFEval instruction id {instruction_id!r}; {hint}known ids: {', '.join(INSTRUCTIONS)}"
        ]
    if kwargs is not None and not isinstance(kwargs, Mapping):
        return None, [f"{instruction_id}: kwargs must be an object (or null), got {kwargs!r:.80}"]
    spec = INSTRUCTIONS[instruction_id]
    given = {k: v for k, v in (kwargs or {}).items() if v is not None}
    problems = [
        f"{instruction_id}: unknown kwarg {name}={given[name]!r:.60}; it takes {sorted(spec.kwargs) or 'none'}"
        for name in given
        if name not in spec.kwargs
    ]
    bound = {}
    for name, convert in spec.kwargs.items():
        if name not in given:
            problems.append(f"{instruction_id}: missing kwarg {name!r}; it takes {sorted(spec.kwargs)}")
            continue
        try:
            bound[name] = convert(given[name])
        except ValueError as exc:
            problems.append(f"{instruction_id}: kwarg {name}={given[name]!r:.60} {exc}")
    return (None, problems) if problems else (partial(spec.check, **bound), [])
