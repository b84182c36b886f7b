"""Builders for the short-prompt sources: code, math, factual QA, classification, creative.

Each builder takes the build context and a count and returns item rows in
selection order. Selection is "shuffle with the source's own seeded generator,
take a prefix" (stratified by round-robin where a source has groups), so a
larger count keeps every item a smaller count chose.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from _suite_common import (
    BuildContext,
    make_item,
    normalize_answer,
    round_robin,
    shuffled,
    system_and_user,
    user,
)

BBH_TASKS = (
    "boolean_expressions",
    "date_understanding",
    "logical_deduction_five_objects",
    "multistep_arithmetic_two",
    "navigate",
    "object_counting",
    "tracking_shuffled_objects_three_objects",
    "web_of_lies",
)
MT_BENCH_CATEGORIES = ("writing", "roleplay", "humanities")
RESTAURANT_SLOTS = {
    "people": "how many people the booking is for",
    "date": "the day of the booking",
    "time": "the time of the booking",
    "first_name": "the customer's first name",
    "last_name": "the customer's last name",
}


def build_humaneval(ctx: BuildContext, count: int) -> list[dict[str, Any]]:
    """HumanEval problems: write the whole function; graded by running the tests."""
    rows = ctx.read_jsonl("humaneval/HumanEval.jsonl.gz")
    items = []
    for row in shuffled(ctx.rng("humaneval"), rows)[:count]:
        code = row["prompt"].lstrip("\n").rstrip()  # most prompts start with blank lines
        prompt = (
            "Complete the following Python function so that it does what its docstring says.\n\n"
            f"```python\n{code}\n```\n\n"
            "Reply with the complete code in a single ```python code block: the imports and any helper "
            f"functions shown above, plus the finished `{row['entry_point']}` function."
        )
        grader = {
            "type": "code_exec",
            "tests": row["test"],
            "entry_point": row["entry_point"],
            "timeout_s": 10,
        }
        number = row["task_id"].split("/")[1]
        reference = row["prompt"] + row["canonical_solution"]
        items.append(
            make_item(
                f"humaneval-{number}", "code", user(prompt), reference, grader, "humaneval", row["task_id"]
            )
        )
    return items


def _gsm8k_answer(answer: str) -> int | float:
    value = float(answer.split("####")[-1].strip().replace(",", ""))
    return int(value) if value.is_integer() else value


def build_gsm8k(ctx: BuildContext, count: int) -> list[dict[str, Any]]:
    """GSM8K word problems; graded on the final number."""
    rows = list(enumerate(ctx.read_jsonl("gsm8k/test.jsonl")))
    items = []
    for index, row in shuffled(ctx.rng("gsm8k"), rows)[:count]:
        prompt = (
            "Solve this math word problem. Work through it step by step, then give the final answer "
            'on its own last line as "Answer: <number>" (digits only, no units).\n\n'
            f"{row['question']}"
        )
        reference = _gsm8k_answer(row["answer"])
        items.append(
            make_item(f"gsm8k-{index}", "math", user(prompt), reference, {"type": "numeric"}, "gsm8k", index)
        )
    return items


def _bbh_answer_format(target: str) -> str:
    if re.fullmatch(r"\([A-Z]\)", target):
        return "the letter of the correct option in parentheses, such as (A)"
    if target in ("True", "False"):
        return "True or False"
    if target in ("Yes", "No"):
        return "Yes or No"
    if re.fullmatch(r"-?\d+", target):
        return "the number"
    return "the answer"


def build_bbh(ctx: BuildContext, count: int) -> list[dict[str, Any]]:
    """BIG-Bench Hard reasoning and arithmetic tasks, a round-robin over the tasks."""
    rng = ctx.rng("bbh")
    groups, canaries = [], {}
    for task in BBH_TASKS:
        data = ctx.read_json(f"bbh/{task}.json")
        canaries[task] = data["canary"]
        groups.append(shuffled(rng, [(task, i, ex) for i, ex in enumerate(data["examples"])]))
    items = []
    for task, index, example in round_robin(groups, count):
        target = example["target"]
        prompt = (
            f"{example['input']}\n\n"
            'Think it through step by step, then finish your reply with the sentence "So the answer is X." '
            f"where X is {_bbh_answer_format(target)}."
        )
        # answer_after tells the exact grader where the final answer starts (BBH's own convention).
        grader = {"type": "exact", "answer_after": "So the answer is"}
        items.append(
            make_item(
                f"bbh-{task}-{index}",
                "math",
                user(prompt),
                target,
                grader,
                "bbh",
                f"{task}/{index}",
                bbh_task=task,
                canary=canaries[task],
            )
        )
    return items


def build_nq_open(ctx: BuildContext, count: int) -> list[dict[str, Any]]:
    """NQ-Open closed-book questions; any answer alias counts."""
    rows = [
        (index, row)
        for index, row in enumerate(ctx.read_jsonl("nq_open/NQ-open.dev.jsonl"))
        if normalize_answer(row["question"]) not in ctx.used_questions
    ]
    items = []
    for index, row in shuffled(ctx.rng("nq_open"), rows)[:count]:
        prompt = (
            "Answer the following question with a short answer: just the name, date, number or phrase, "
            f"no explanation.\n\nQuestion: {row['question']}?"
        )
        aliases = list(row["answer"])
        items.append(
            make_item(
                f"nq_open-{index}", "factual_qa", user(prompt), aliases, {"type": "alias"}, "nq_open", index
            )
        )
    return items


def build_mmlu(ctx: BuildContext, count: int) -> list[dict[str, Any]]:
    """MMLU four-choice questions, one subject after another (stratified by subject)."""
    rows = list(enumerate(csv.DictReader(io.StringIO(ctx.read_text("mmlu/mmlu_test.csv.gz"), newline=""))))
    rng = ctx.rng("mmlu")
    by_subject: dict[str, list[tuple[int, dict[str, str]]]] = {}
    for index, row in rows:
        by_subject.setdefault(row["subject"], []).append((index, row))
    subjects = shuffled(rng, sorted(by_subject))
    groups = [shuffled(rng, by_subject[subject]) for subject in subjects]
    items = []
    for index, row in round_robin(groups, count):
        subject = row["subject"].replace("_", " ")
        choices = "\n".join(f"{letter}. {row[letter].strip()}" for letter in "ABCD")
        prompt = (
            f"The following is a multiple-choice question about {subject}. Reply with the letter of the "
            f"correct answer (A, B, C or D) only.\n\n{row['question'].strip()}\n\n{choices}"
        )
        grader = {"type": "mcq", "choices": ["A", "B", "C", "D"]}
        items.append(
            make_item(
                f"mmlu-{index}",
                "factual_qa",
                user(prompt),
                row["answer"],
                grader,
                "mmlu",
                index,
                subject=row["subject"],
            )
        )
    return items


def build_banking77(ctx: BuildContext, count: int) -> list[dict[str, Any]]:
    """BANKING77 intents, one category after another; the label list is the system turn."""
    labels = ctx.read_json("banking77/categories.json")
    rows = list(enumerate(csv.DictReader(io.StringIO(ctx.read_text("banking77/test.csv"), newline=""))))
    rng = ctx.rng("banking77")
    by_label: dict[str, list[tuple[int, dict[str, str]]]] = {}
    for index, row in rows:
        by_label.setdefault(row["category"], []).append((index, row))
    groups = [shuffled(rng, by_label[label]) for label in shuffled(rng, sorted(by_label))]
    system = (
        "You are an intent classifier for a bank's customer-support chat. Classify the customer's message "
        "into exactly one of the intent labels below. Reply with the label only, exactly as written.\n\n"
        "Labels:\n" + "\n".join(labels)
    )
    grader = {"type": "label", "labels": labels}
    items = []
    for index, row in round_robin(groups, count):
        messages = system_and_user(system, row["text"])
        items.append(
            make_item(
                f"banking77-{index}", "classification", messages, row["category"], grader, "banking77", index
            )
        )
    return items


def _restaurant_candidates(turns: list[dict[str, Any]]) -> list[tuple[int, str, dict[str, str]]]:
    """Turns of more than 8 words with at least one slot and no dialogue context, first of each text."""
    out, seen = [], set()
    for index, turn in enumerate(turns):
        text = turn["userInput"]["text"]
        if len(text.split()) <= 8 or not turn.get("labels") or turn.get("context") or text in seen:
            continue
        seen.add(text)
        spans = {}
        for label in turn["labels"]:
            span = label["valueSpan"]
            spans[label["slot"]] = text[span.get("startIndex", 0) : span["endIndex"]]
        out.append((index, text, spans))
    return out


def build_restaurant8k(ctx: BuildContext, count: int) -> list[dict[str, Any]]:
    """Restaurant-8k booking requests: extract slots as JSON, graded by slot F1."""
    candidates = _restaurant_candidates(ctx.read_json("restaurant8k/test.json.gz"))
    slot_lines = "\n".join(f"- {slot}: {meaning}" for slot, meaning in RESTAURANT_SLOTS.items())
    system = (
        "You extract booking details from messages sent to a restaurant's booking assistant. Reply with a "
        "JSON object only. Its keys are the details found in the message, chosen from:\n"
        f"{slot_lines}\n"
        "Each value must be the exact text from the message (copy it, do not rephrase or convert it). "
        "Leave out details that are not mentioned; reply {} if there are none."
    )
    items = []
    for index, text, spans in shuffled(ctx.rng("restaurant8k"), candidates)[:count]:
        messages = system_and_user(system, text)
        items.append(
            make_item(
                f"restaurant8k-{index}",
                "classification",
                messages,
                spans,
                {"type": "slot_f1"},
                "restaurant8k",
                index,
            )
        )
    return items


def build_mt_bench(ctx: BuildContext, count: int) -> list[dict[str, Any]]:
    """MT-Bench first turns of the open-ended categories; graded by an LLM judge."""
    questions = ctx.read_jsonl("mt_bench/question.jsonl")
    groups = [[q for q in questions if q["category"] == category] for category in MT_BENCH_CATEGORIES]
    items = []
    for question in round_robin(groups, count):
        qid = question["question_id"]
        grader = {"type": "judge", "mode": "single"}
        items.append(
            make_item(
                f"mt_bench-{qid}",
                "creative",
                user(question["turns"][0]),
                None,
                grader,
                "mt_bench",
                qid,
                category=question["category"],
            )
        )
    return items
