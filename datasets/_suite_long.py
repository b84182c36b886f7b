"""Builders for the long_document sources (prompts of roughly 3k-7k tokens).

Token counts are estimated as characters / 4, which overestimates English text
for current BPE tokenizers slightly (about 4.2 characters per token), so the
cap errs on the short side.
"""

from __future__ import annotations

import re
from typing import Any

from _suite_common import BuildContext, make_item, normalize_answer, round_robin, shuffled, user

CHARS_PER_TOKEN = 4
SQUALITY_MAX_TOKENS = 7000
NQ_DISTRACTORS = 24


def build_longchat_lines(ctx: BuildContext, count: int) -> list[dict[str, Any]]:
    """LongChat 200-line register retrieval; the prompt is used as written."""
    rows = list(enumerate(ctx.read_jsonl("longchat_lines/200_lines.jsonl.gz")))
    items = []
    for index, row in shuffled(ctx.rng("longchat_lines"), rows)[:count]:
        line_name, line_index = row["random_idx"]
        items.append(
            make_item(
                f"longchat_lines-200-{index}",
                "long_document",
                user(row["prompt"].rstrip()),
                row["expected_number"],
                {"type": "numeric"},
                "longchat_lines",
                index,
                file="200_lines.jsonl",
                num_lines=row["num_lines"],
                line_name=line_name,
                line_index=line_index,
            )
        )
    return items


def _has_answer(passage: dict[str, Any], answers: list[str]) -> bool:
    text = normalize_answer(f"{passage['title']} {passage['text']}")
    return any(normalize_answer(answer) and normalize_answer(answer) in text for answer in answers)


def _distractors(rng: Any, rows: list[dict[str, Any]], own: int, count: int) -> list[int]:
    """Other rows' gold passages that mention none of this row's answers."""
    answers, title = rows[own]["answers"], rows[own]["ctxs"][0]["title"]
    chosen: list[int] = []
    for index in rng.sample(range(len(rows)), len(rows)):
        passage = rows[index]["ctxs"][0]
        if index == own or passage["title"] == title or _has_answer(passage, answers):
            continue
        if passage["title"] in {rows[i]["ctxs"][0]["title"] for i in chosen}:
            continue
        chosen.append(index)
        if len(chosen) == count:
            break
    return chosen


def build_nq_open_oracle(ctx: BuildContext, count: int) -> list[dict[str, Any]]:
    """Multi-document NQ: the gold passage among distractors, at a varied position."""
    rows = ctx.read_jsonl("nq_open_oracle/nq-open-oracle.jsonl.gz")
    rng = ctx.rng("nq_open_oracle")
    picked = [i for i in shuffled(rng, list(range(len(rows)))) if rows[i]["ctxs"][0].get("hasanswer")][:count]
    items = []
    for index in picked:
        row = rows[index]
        passages = [rows[i]["ctxs"][0] for i in _distractors(rng, rows, index, NQ_DISTRACTORS)]
        gold_position = rng.randrange(len(passages) + 1)
        passages.insert(gold_position, row["ctxs"][0])
        documents = "\n".join(
            f"Document [{n}](Title: {p['title']}) {p['text']}" for n, p in enumerate(passages, start=1)
        )
        prompt = (
            "Write a high-quality answer for the given question using only the provided search results "
            "(some of which might be irrelevant). Answer with a short phrase only: a name, date, number "
            f"or a few words.\n\n{documents}\n\nQuestion: {row['question']}?"
        )
        ctx.used_questions.add(normalize_answer(row["question"]))
        items.append(
            make_item(
                f"nq_open_oracle-{index}",
                "long_document",
                user(prompt),
                list(row["answers"]),
                {"type": "alias"},
                "nq_open_oracle",
                index,
                documents=len(passages),
                gold_document=gold_position + 1,
            )
        )
    return items


def _tidy_story(text: str) -> str:
    """Strip the indentation and runs of blank lines the source text is full of."""
    lines = [line.strip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _squality_prompt(story: str, question: str) -> str:
    return (
        "Read the story below, then answer the question after it. Write one or two paragraphs "
        "(about 150-300 words) and base your answer only on the story.\n\n"
        f"Story:\n{story}\n\nQuestion: {question}"
    )


def build_squality(ctx: BuildContext, count: int) -> list[dict[str, Any]]:
    """SQuALITY question-focused summaries of stories short enough for the token cap."""
    rng = ctx.rng("squality")
    groups = []
    for row in shuffled(rng, ctx.read_jsonl("squality/dev.jsonl.gz")):
        story = _tidy_story(row["document"])
        longest = max(len(_squality_prompt(story, q["question_text"])) for q in row["questions"])
        if longest / CHARS_PER_TOKEN > SQUALITY_MAX_TOKENS:
            continue
        groups.append(shuffled(rng, [(row, story, q) for q in row["questions"]]))
    items = []
    for row, story, question in round_robin(groups, count):
        passage_id, number = row["metadata"]["passage_id"], question["question_number"]
        references = [response["response_text"] for response in question["responses"]]
        items.append(
            make_item(
                f"squality-{passage_id}-q{number}",
                "long_document",
                user(_squality_prompt(story, question["question_text"])),
                references,
                {"type": "judge", "mode": "reference"},
                "squality",
                f"{passage_id}/{number}",
                story_license=row["metadata"]["license"],
            )
        )
    return items
