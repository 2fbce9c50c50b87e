"""`recsys eval --protocol logs`: the served lists and their outcomes (`logs`) measured overall, per segment and
per experiment variant with intervals, each variant against its control, the sample-ratio check, an optional A/A
check, and off-policy estimates of the logging policy without its exploration; as a `Report`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recsys.contract.report import Report, Table
from recsys_tools.evaluation import ope
from recsys_tools.evaluation.experiments import (
    bootstrap_means,
    differences,
    percentile_interval,
    sample_ratio,
)
from recsys_tools.evaluation.logs import (
    LoggedList,
    LogOptions,
    aa_halves,
    arms,
    metric_names,
    per_list_values,
    read_logs,
    relevant,
    set_metrics,
    subjects_per_variant,
)

ALL = "all lists"
CONFIDENCE = 0.95
GREEDY = 0.5  # a slot's item shown with a higher propensity is the logging policy's own (greedy) choice there


@dataclass
class LogEvaluation:
    report: Report
    aa_passed: bool | None  # None: no A/A check asked for


def _summary(
    lists: list[LoggedList], indices: list[int], values: np.ndarray, names: list[str], k: int, reward: str, seed: int
) -> tuple[dict[str, int | float], np.ndarray, np.ndarray]:
    """The metrics of the lists at `indices` (means with their intervals, then the set metrics), the point means
    and the bootstrap means."""
    chosen = values[indices]
    subjects = [lists[i].subject for i in indices]
    point = chosen.mean(axis=0)
    samples = bootstrap_means(chosen, subjects, seed=(0, seed))
    low, high = percentile_interval(samples, CONFIDENCE)
    users = len({lists[i].user_id for i in indices if lists[i].user_id})
    metrics: dict[str, int | float] = {"lists": len(indices), "subjects": len(set(subjects)), "users": users}
    for j, name in enumerate(names):
        metrics |= {name: float(point[j]), f"{name}_low": float(low[j]), f"{name}_high": float(high[j])}
    metrics |= set_metrics([lists[i] for i in indices], k, reward)
    return metrics, point, samples


def _ope(lists: list[LoggedList], options: LogOptions) -> tuple[Table | None, list[str]]:
    """Off-policy estimates over the lists whose every item has a logged propensity."""
    logged = [x for x in lists if x.items and all(p is not None for p in x.propensities)]
    if not logged:
        return None, ["off-policy estimates: no served list carries propensities (the policy was not randomized)"]
    reward, p, position, group = [], [], [], []
    for index, x in enumerate(logged):
        rel = relevant(x, options.reward)
        for rank, (item, propensity) in enumerate(zip(x.items, x.propensities, strict=True)):
            reward.append(float(item in rel))
            p.append(propensity)
            position.append(rank)
            group.append(index)
    p_arr = np.asarray(p, dtype=np.float64)
    common = {"reward": np.asarray(reward), "logging_propensity": p_arr, "position": np.asarray(position)}
    common["group"] = np.asarray(group)
    targets = {
        "logged policy": p_arr,  # w = 1: the on-policy mean, the reference the others move from
        "greedy (no exploration)": (p_arr > GREEDY).astype(np.float64),
    }
    rows = []
    for target, q in targets.items():
        found = ope.estimate(
            ope.Slots(target_propensity=q, **common), clip=options.clip, min_propensity=options.min_propensity
        )
        for name in ("ips",) if target == "logged policy" else ope.ESTIMATORS:
            e = found[name]
            rows.append([target, name.upper(), round(e.value, 6), f"{e.low:.4f} .. {e.high:.4f}", len(reward)])
    table = Table(
        title="Off-policy estimates",
        text=(
            f"Mean discounted {options.reward} per shown slot (discount 1 / log2(rank + 1)) under each target, from "
            f"{len(logged)} lists with logged propensities; weights clipped at {options.clip:g}, propensities "
            f"floored at {options.min_propensity:g}; {CONFIDENCE:.0%} bootstrap intervals over lists. The greedy "
            f"target shows at each slot the item the logging policy showed with propensity > {GREEDY}."
        ),
        header=["target", "estimator", "value", "interval", "slots"],
        rows=rows,
    )
    return table, []


def run_logs(options: LogOptions) -> LogEvaluation:
    lists, counts = read_logs(options)
    ks = sorted(set(options.ks))
    k = 10 if 10 in ks else ks[-1]
    names = metric_names(ks)
    values = per_list_values(lists, ks, options.reward)
    notes: list[str] = []
    results: dict[str, dict[str, dict[str, int | float]]] = {}
    seeds = iter(range(1, 1_000_000))
    if lists:
        results[ALL] = {"overall": _summary(lists, list(range(len(lists))), values, names, k, options.reward, 0)[0]}
        segments: dict[str, list[int]] = {}
        for index, logged in enumerate(lists):
            segments.setdefault(logged.context.get("segment", "default"), []).append(index)
        if len(segments) > 1:
            for segment, indices in sorted(segments.items()):
                summary = _summary(lists, indices, values, names, k, options.reward, next(seeds))[0]
                results[ALL][f"segment: {segment}"] = summary
    else:
        notes.append("no served list in the logs: nothing to measure")
    if options.aa_check and lists and not arms(lists, options.experiment):
        aa_halves(lists)
        notes.append("A/A check without an experiment in the logs: subjects split in two halves by a hash")
    comparisons: list[dict] = []
    srm_rows: list[list] = []
    passed = True
    compared = ["ctr", "conversion", f"ndcg@{k}"]
    for experiment, variants in arms(lists, options.experiment).items():
        control = options.control if options.control in variants else next(iter(variants))
        if options.control and options.control not in variants:
            notes.append(f"{experiment}: no variant {options.control!r}; the control is {control!r}")
        points, samples = {}, {}
        for variant, indices in variants.items():
            summary, points[variant], samples[variant] = _summary(
                lists, indices, values, names, k, options.reward, next(seeds)
            )
            results[f"{experiment} / {variant}"] = {"overall": summary}
        columns = [names.index(name) for name in compared]
        for variant in variants:
            if variant == control:
                continue
            for found in differences(
                compared,
                points[variant][columns],
                samples[variant][:, columns],
                points[control][columns],
                samples[control][:, columns],
                CONFIDENCE,
            ):
                first, second = f"{experiment} / {variant}", f"{experiment} / {control}"
                lists_pair = [len(variants[variant]), len(variants[control])]
                comparisons.append({"first": first, "second": second, "lists": lists_pair, **found})
                passed &= found["verdict"] == "level"
        weights = options.split_weights
        if weights and not all(v in weights for v in variants):
            notes.append(f"{experiment}: --split-weights does not name every variant; expected an equal split")
            weights = None
        check = sample_ratio(subjects_per_variant(lists, variants), weights)
        passed &= not check["mismatch"]
        srm_rows.append(
            [
                experiment,
                ", ".join(f"{v} {n}" for v, n in check["observed"].items()),
                ", ".join(f"{v} {s:.3f}" for v, s in check["expected_share"].items()),
                check["chi2"],
                f"{check['p_value']:.3g}",
                "MISMATCH" if check["mismatch"] else "ok",
            ]
        )
    tables = []
    if srm_rows:
        tables.append(
            Table(
                title="Sample ratio",
                text="Subjects (users, else sessions) per variant against the expected split: chi-square "
                "goodness of fit, a mismatch when p < 0.001 (the assignment or the logging lost subjects).",
                header=["experiment", "subjects", "expected share", "chi2", "p", "check"],
                rows=srm_rows,
            )
        )
    table, ope_notes = _ope(lists, options)
    tables += [table] if table else []
    notes += ope_notes
    aa_passed = None
    if options.aa_check:
        aa_passed = passed and bool(srm_rows)
        notes.append(
            "A/A check "
            + ("passed: every variant is level with its control and the split matches" if aa_passed else "FAILED")
        )
    report = Report(
        title="Log-based evaluation",
        dataset={"raw": options.raw, "tenant": options.tenant, "surface": options.surface, **counts.to_json()},
        split={
            "lists": len(lists),
            "served": [lists[0].ts.isoformat(), lists[-1].ts.isoformat()] if lists else None,
            "attribution_hours": options.attribution_hours,
            "reward": options.reward,
        },
        ks=ks,
        results=results,
        comparisons=comparisons,
        columns=[
            "lists",
            "users",
            "ctr",
            "item_ctr",
            "conversion",
            *(f"{family}@{k}" for family in ("ndcg", "hit_rate", "precision", "recall", "map")),
            "mrr",
            f"coverage@{k}",
            f"diversity@{k}",
            f"novelty@{k}",
        ],
        segment_help={
            "overall": "every served list; a list without a relevant item scores 0; (low .. high): 95% bootstrap "
            "interval over subjects"
        },
        comparisons_help="Per list, metric(first) - metric(second) between variants (different subjects); the "
        "interval is a bootstrap of each variant's mean over its subjects.",
        tables=tables,
        notes=notes,
    )
    return LogEvaluation(report, aa_passed)
