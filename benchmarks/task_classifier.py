"""Learned task classifier (issue #13) against the seed's KeywordClassifier, measured in the same run.

Run: ``python benchmarks/task_classifier.py [--quick] [--ablation] [--shared PATH] [--json PATH]``
(about a minute; ``--ablation`` adds a few minutes: feature, window and template-copy variants).

1. **Cross-validated accuracy on the ``default`` suite** (300 items, six task
   types): stratified 5-fold, seed 0, every item predicted by a model not trained
   on it; per task type recall and the macro average (mean recall). Baseline: the
   KeywordClassifier's label equal to the suite's (it has another vocabulary, so
   most of its answers can never match: the issue measured 54/300 = 18 %).
2. **Held out**: items of the same sources that are *not* in the suite, built by
   the suite's own builders (``benchmarks/_task_items.py``), classified by the
   model trained on the whole suite. "Routed right" counts an abstention as a miss.
3. **Stress, no target**: the same sources' cases without the suite's instruction
   wrapper, and MT-Bench second turns: how a request without a benchmark template
   fares (a classifier trained on one suite learns its templates).
4. **Latency** of ``classifier(request)`` (request text, features, calibrated
   softmax, threshold) for a 500-word prompt and a 20k-token prompt: p50/p95 over
   interleaved rounds, KeywordClassifier in the same rounds.

Targets: CV macro ≥ 95 %, held-out ≥ 90 %, p50 ≤ 100 µs (500 words) and ≤ 1 ms (20k tokens).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Sequence

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _task_items import bare_items, default_shared_data, held_out_items

TARGETS = {"cv_macro": 0.95, "held_out": 0.90, "p50_500_words_us": 100.0, "p50_20k_tokens_us": 1000.0}


def per_type(truth: Sequence[str], predicted: Sequence[str | None]) -> dict[str, tuple[int, int]]:
    """task type -> (right, total)."""
    right, total = Counter(), Counter()
    for t, p in zip(truth, predicted):
        total[t] += 1
        right[t] += p == t
    return {t: (right[t], total[t]) for t in sorted(total)}


def macro(scores: dict[str, tuple[int, int]]) -> float:
    return statistics.fmean(r / n for r, n in scores.values())


def overall(scores: dict[str, tuple[int, int]]) -> float:
    return sum(r for r, _ in scores.values()) / sum(n for _, n in scores.values())


def accuracy_table(title: str, columns: dict[str, dict[str, tuple[int, int]]]) -> None:
    print(f"\n{title}")
    types = sorted({t for scores in columns.values() for t in scores})
    print(f"  {'task type':<16}" + "".join(f"{name:>24}" for name in columns))
    for t in types:
        cells = []
        for scores in columns.values():
            r, n = scores.get(t, (0, 0))
            cells.append(f"{r}/{n} {r / n:6.1%}" if n else "—")
        print(f"  {t:<16}" + "".join(f"{c:>24}" for c in cells))
    print(f"  {'overall':<16}" + "".join(f"{overall(s):>24.1%}" for s in columns.values()))
    print(f"  {'macro':<16}" + "".join(f"{macro(s):>24.1%}" for s in columns.values()))


def requests_of(rows: list[dict[str, Any]]) -> list[Any]:
    from evalkit import ChatRequest

    return [ChatRequest(messages=row["messages"]) for row in rows]


def long_prompt(texts: Sequence[str], tokens: int) -> str:
    """Real suite text (long documents first) repeated until it counts ``tokens`` tokens."""
    from evalkit import count_tokens

    pool = "\n\n".join(sorted(texts, key=len, reverse=True))
    text = pool
    while count_tokens(text, "").count < tokens:
        text += "\n\n" + pool
    words = text.split(" ")
    low, high = 1, len(words)  # the shortest prefix with at least ``tokens`` tokens
    while low < high:
        mid = (low + high) // 2
        if count_tokens(" ".join(words[:mid]), "").count >= tokens:
            high = mid
        else:
            low = mid + 1
    return " ".join(words[:low])


def latency(classifiers: dict[str, Callable[[Any], Any]], request: Any, rounds: int, per_round: int) -> dict:
    """p50/p95 microseconds per classifier; rounds interleave the classifiers so load hits them alike."""
    samples: dict[str, list[float]] = {name: [] for name in classifiers}
    for fn in classifiers.values():
        for _ in range(50):
            fn(request)
    clock = time.perf_counter_ns
    for _ in range(rounds):
        for name, fn in classifiers.items():
            out = samples[name]
            for _ in range(per_round):
                start = clock()
                fn(request)
                out.append((clock() - start) / 1000)
    return {name: (statistics.median(v), statistics.quantiles(v, n=20)[18]) for name, v in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer latency samples")
    parser.add_argument("--ablation", action="store_true", help="also compare feature/window/template variants")
    parser.add_argument("--shared", type=Path, default=None, help="source data (default: ../shared/data)")
    parser.add_argument("--json", type=Path, default=None, help="write the numbers here")
    args = parser.parse_args()

    from evalkit.analysis.classifier_training import examples_from_dataset, train_task_classifier
    from evalkit.datasets import load_dataset
    from evalkit.router.tasks import KeywordClassifier

    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    dataset = load_dataset("default")
    texts, labels, ids = examples_from_dataset(dataset)
    keywords = KeywordClassifier()
    from evalkit import ChatRequest

    suite_requests = [ChatRequest(messages=item.messages) for item in dataset]
    keyword_cv = per_type(labels, [keywords(r) for r in suite_requests])

    start = time.perf_counter()
    model, report = train_task_classifier(texts, labels, ids=ids, folds=5, seed=0)
    train_s = time.perf_counter() - start
    learned_cv = per_type(labels, report.cross_fit_predictions)
    deployed_cv = per_type(labels, report.deployed_predictions)
    print(f"\n{report.to_text()}\n(training with 5-fold cross-validation: {train_s:.1f} s)")
    accuracy_table("1. default suite, cross-validated (each item predicted by a model not trained on it)",
                   {"KeywordClassifier": keyword_cv, "learned (best label)": learned_cv,
                    "learned (abstain=miss)": deployed_cv})
    results: dict[str, Any] = {"cv": {"keyword_macro": macro(keyword_cv), "keyword_overall": overall(keyword_cv),
                                      "macro": report.macro_accuracy, "accuracy": report.accuracy,
                                      "deployed_macro": macro(deployed_cv), "train_s": train_s,
                                      "report": report.to_dict()}}

    shared = args.shared or default_shared_data()
    if shared is None:
        print("\n2-3. skipped: source data not found at ../shared/data (pass --shared)")
    else:
        results.update(held_out_sections(model, keywords, shared, set(ids)))
    results["latency"] = latency_section(model, keywords, texts, quick=args.quick)
    verdicts(results)
    if args.ablation and shared is not None:
        results["ablation"] = ablation(texts, labels, ids, shared)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    print(f"\nload average {os.getloadavg()[0]:.2f}")


def held_out_sections(model: Any, keywords: Any, shared: Path, suite_ids: set[str]) -> dict[str, Any]:
    out = {}
    for key, title, rows in (
            ("held_out", "2. held out: items of the suite's sources NOT in the suite (suite's own builders)",
             held_out_items(shared, suite_ids)),
            ("bare", "3. stress, no target: the same sources without the suite's instruction wrapper",
             bare_items(shared, suite_ids))):
        requests = requests_of(rows)
        truth = [row["task_type"] for row in rows]
        predictions = [model.predict(r) for r in requests]
        best = per_type(truth, [p.best for p in predictions])
        deployed = per_type(truth, [p.label for p in predictions])
        keyword = per_type(truth, [keywords(r) for r in requests])
        accuracy_table(f"{title}: {len(rows)} items",
                       {"KeywordClassifier": keyword, "learned (best label)": best, "learned (abstain=miss)": deployed})
        by_source: dict[str, list[bool]] = {}
        for row, p in zip(rows, predictions):
            source = row.get("source") or row["metadata"]["source"]
            by_source.setdefault(source, []).append(p.label == row["task_type"])
        print("  by source (routed right): " + ", ".join(f"{s} {sum(v)}/{len(v)}" for s, v in by_source.items()))
        out[key] = {"n": len(rows), "accuracy": overall(best), "macro": macro(best),
                    "deployed_accuracy": overall(deployed), "keyword_accuracy": overall(keyword),
                    "per_type": {t: r / n for t, (r, n) in best.items()},
                    "by_source": {s: sum(v) / len(v) for s, v in by_source.items()}}
    return out


def latency_section(model: Any, keywords: Any, texts: Sequence[str], *, quick: bool) -> dict[str, Any]:
    from evalkit import ChatRequest, count_tokens

    words = " ".join(t.split("\n", 1)[-1] for t in texts).split()
    prompts = {"500 words": " ".join(words[1000:1500]), "20k tokens": long_prompt(texts, 20_000)}
    rounds, per_round = (5, 200) if quick else (20, 500)
    print(f"\n4. latency of classifier(request), µs ({rounds} interleaved rounds of {per_round} calls)")
    print(f"  {'prompt':<12}{'classifier':<20}{'p50':>9}{'p95':>9}{'p50 ratio':>11}")
    out = {}
    for name, prompt in prompts.items():
        request = ChatRequest.from_prompt(prompt)
        timings = latency({"KeywordClassifier": keywords, "learned": model}, request, rounds, per_round)
        base = timings["KeywordClassifier"][0]
        for cls, (p50, p95) in timings.items():
            print(f"  {name:<12}{cls:<20}{p50:>9.1f}{p95:>9.1f}{p50 / base:>10.2f}x")
        out[name] = {"tokens": count_tokens(prompt, "").count, "chars": len(prompt),
                     **{f"{cls}_p50_us": t[0] for cls, t in timings.items()},
                     **{f"{cls}_p95_us": t[1] for cls, t in timings.items()}}
    print("  (" + "; ".join(f"{n}: {v['chars']:,} chars, {v['tokens']:,} tokens" for n, v in out.items()) + ")")
    return out


def verdicts(results: dict[str, Any]) -> None:
    checks = [("CV macro accuracy on default", results["cv"]["macro"], TARGETS["cv_macro"], True, "{:.1%}")]
    if "held_out" in results:
        checks.append(("held-out accuracy (best label)", results["held_out"]["accuracy"], TARGETS["held_out"], True,
                       "{:.1%}"))
        checks.append(("held-out routed right (abstain=miss)", results["held_out"]["deployed_accuracy"],
                       TARGETS["held_out"], True, "{:.1%}"))
    lat = results["latency"]
    checks.append(("p50, 500-word prompt (µs)", lat["500 words"]["learned_p50_us"], TARGETS["p50_500_words_us"],
                   False, "{:.1f}"))
    checks.append(("p50, 20k-token prompt (µs)", lat["20k tokens"]["learned_p50_us"], TARGETS["p50_20k_tokens_us"],
                   False, "{:.1f}"))
    print("\ntargets")
    for name, value, target, higher, fmt in checks:
        ok = value >= target if higher else value <= target
        sign = ">=" if higher else "<="
        print(f"  {name:<40}{fmt.format(value):>10}  {sign} {fmt.format(target):<8} {'PASS' if ok else 'FAIL'}")


def ablation(texts: Sequence[str], labels: Sequence[str], ids: Sequence[str], shared: Path) -> list[dict[str, Any]]:
    """The same measurements for feature, window and template-copy variants (how the defaults were chosen)."""
    from evalkit import ChatRequest
    from evalkit.analysis.classifier_training import train_task_classifier
    from evalkit.router.classifier import FeatureSpec

    held = held_out_items(shared, set(ids))
    bare = bare_items(shared, set(ids))
    probe = ChatRequest.from_prompt(" ".join(" ".join(texts).split()[1000:1500]))
    long_probe = ChatRequest.from_prompt(long_prompt(texts, 20_000))
    variants = [
        ("default: char 4 + words 1,2; window 1000+500; copies 0.3", {}, {}),
        ("no template copies", {}, {"template_weight": 0.0}),
        ("template copies at weight 1.0", {}, {"template_weight": 1.0}),
        ("words 1,2 only", {"char_ngrams": ()}, {}),
        ("char 3,4,5 + words 1,2", {"char_ngrams": (3, 4, 5)}, {}),
        ("window 2000+1000", {"head_chars": 2000, "tail_chars": 1000}, {}),
        ("window 500+250", {"head_chars": 500, "tail_chars": 250}, {}),
        ("window 100000+0 (whole text)", {"head_chars": 100_000, "tail_chars": 0}, {}),
        ("l2 1e-2", {}, {"l2": 1e-2}),
        ("l2 1e-4", {}, {"l2": 1e-4}),
    ]
    print("\nablation (each row: CV on default, then the model on held-out and bare items)")
    print(f"  {'variant':<58}{'CV macro':>9}{'held-out':>9}{'bare':>7}{'p50 µs 500w':>12}{'20k tok':>8}")
    rows = []
    for name, spec, options in variants:
        model, report = train_task_classifier(texts, labels, features=FeatureSpec(**spec), **options)
        held_acc = statistics.fmean(model.predict(r).best == row["task_type"]
                                    for r, row in zip(requests_of(held), held))
        bare_acc = statistics.fmean(model.predict(r).best == row["task_type"]
                                    for r, row in zip(requests_of(bare), bare))
        p50 = latency({"m": model}, probe, 5, 200)["m"][0]
        p50_long = latency({"m": model}, long_probe, 5, 100)["m"][0]
        print(f"  {name:<58}{report.macro_accuracy:>9.1%}{held_acc:>9.1%}{bare_acc:>7.1%}{p50:>12.1f}"
              f"{p50_long:>8.0f}", flush=True)
        rows.append({"variant": name, "cv_macro": report.macro_accuracy, "held_out": held_acc, "bare": bare_acc,
                     "p50_us_500_words": p50, "p50_us_20k_tokens": p50_long})
    return rows


if __name__ == "__main__":
    main()
