"""Graders: turn a model's output for a dataset item into a :class:`Grade` (score, pass/fail, reason).

``grader_for(item.grader)`` gives the grader a spec names; ``await
grader.grade(item, output)`` grades. Judge specs need a judge target:
``grader_for(item.grader, judge=provider_or_router)``.

==============  ==========================================================================
type            extraction and comparison
==============  ==========================================================================
``exact``       text after the last ``answer_after`` marker (else the last line), case and
                whitespace folded, trailing period dropped; ``(B)`` references accept ``B``
``normalized``  as ``exact``, with SQuAD normalisation (no punctuation or articles)
``alias``       SQuAD-normalised output equals an alias or contains one as whole words
``numeric``     first number after the last "The answer is" / "Answer:" / "####", else the
                last number; commas, ``$``, ``%`` dropped; equal within 1e-6
``mcq``         letter after "answer is" / "Answer:", else a lone letter, a leading
                option label, or the one ``(X)`` in the reply
``label``       the whole output, else the unique label mentioned (longest mention wins)
``slot_f1``     first JSON object in the output; F1 over normalised (slot, value) pairs
``regex``       ``re.search(pattern, output, flags)``
``json``        the output (code fence allowed) is JSON, equal to the reference if any
``json_schema`` the output is JSON valid against ``schema`` (needs ``jsonschema``)
``code_exec``   the reply's code + tests in a bubblewrap sandbox; pass when ``check`` returned
``judge``       an LLM rates 1–10 (MT-Bench single-answer prompts); pass at >= 7
==============  ==========================================================================

``code_exec`` needs bubblewrap: ``sandbox_problem()`` says why it cannot run here (None
when it can), and its graders raise :class:`SandboxUnavailable` there unless built with
``grader_for(spec, unsafe_code_exec=True)``.

Nothing here imports more than the standard library until a grader needs it.
"""

from ._base import Grade, Grader
from ._classify import LabelGrader, SlotF1Grader, find_label, slot_f1
from ._code_exec import CodeExecGrader, build_program, extract_code
from ._extract import extract_choice, extract_number
from ._json import JSONGrader, JSONSchemaGrader
from ._judge import JudgeGrader, build_judge_prompt, parse_rating
from ._match import (
    AliasGrader,
    ExactGrader,
    MCQGrader,
    NormalizedGrader,
    NumericGrader,
    RegexGrader,
)
from ._registry import GRADER_CLASSES, grader_for
from ._sandbox import SandboxUnavailable, sandbox_problem
from ._text import squad_normalize

__all__ = [
    "GRADER_CLASSES",
    "AliasGrader",
    "CodeExecGrader",
    "ExactGrader",
    "Grade",
    "Grader",
    "JSONGrader",
    "JSONSchemaGrader",
    "JudgeGrader",
    "LabelGrader",
    "MCQGrader",
    "NormalizedGrader",
    "NumericGrader",
    "RegexGrader",
    "SandboxUnavailable",
    "SlotF1Grader",
    "build_judge_prompt",
    "build_program",
    "extract_choice",
    "extract_code",
    "extract_number",
    "find_label",
    "grader_for",
    "parse_rating",
    "sandbox_problem",
    "slot_f1",
    "squad_normalize",
]
