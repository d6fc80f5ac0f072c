"""A reviewer's re-run as a page to read: report.md from the report.json that `genreview.studies.reproduce`
measured (verdict, rule, a table of every metric, the set-up)."""
from __future__ import annotations

from pathlib import Path

from ..files import atomic_path
from ..studies.reproduce import reproduce
from .formatting import fmt


def reproduce_and_report(spec: dict, summary_path: str | Path, classifier: str | Path, out: str | Path,
                         threads: int | None = None) -> dict:
    """`reproduce`, then report.md beside its report.json (written whole or not at all), printed too."""
    report = reproduce(spec, summary_path, classifier, out, threads)
    text = markdown(report)
    with atomic_path(Path(out) / "report.md") as tmp:  # the rule's declared output: never half-written
        tmp.write_text(text)
    print(text, flush=True)
    return report


def _n(x) -> str:
    return fmt(x, 4)


def _g(x) -> str:  # a setting as written in config.yaml
    return f"{x:g}"


def markdown(r: dict) -> str:
    """report.json as a page a reviewer reads: verdict, rule, a table of every metric, the set-up."""
    seeds = ", ".join(map(str, r["paper_seeds"]))
    lines = [f"# Re-run of {r['display']} (`{r['model']}`), seed {r['seed']}, profile {r['profile']}", ""]
    if r["verdict"] == "lands":
        lines.append(f"**Verdict: lands.** Every quality metric is within the paper's spread "
                     f"({r['paper_n_ok']} seed{'s' if r['paper_n_ok'] != 1 else ''}: {seeds}).")
    else:
        lines.append(f"**Verdict: misses** on {', '.join(r['missed'])}.")
    if r["cost_missed"]:
        lines.append(f"Timings outside their tolerance (they do not decide): {', '.join(r['cost_missed'])}.")
    lines += ["", f"Rule: {r['rule']}, with the paper's mean and seed standard deviation (0 with one seed); "
                  f"k_sigma = {_g(r['k_sigma'])}, rel_tol = {_g(r['rel_tol'])}. Timings use cost_rel_tol = "
                  f"{_g(r['cost_rel_tol'])} in place of rel_tol and do not decide the verdict (machines differ "
                  "in speed).", ""]
    if r["same_seed"]:
        same = ("The numbers are bit-identical to the paper's run." if r["identical"] else
                f"They are not bit-identical: {', '.join(r['differing']) or 'some metrics are missing'} differ.")
        lines.append(f"Seed {r['seed']} is one of the paper's seeds: on the same machine, thread count and profile "
                     f"the re-run repeats its computation exactly. {same}")
        if not r["identical"] and r["setup"]["differs"]:
            lines.append(f"What differs from the paper's set-up: {', '.join(r['setup']['differs'])}.")
    else:
        lines.append(f"Seed {r['seed']} is a fresh seed (the paper ran {seeds}): the paper's seed spread "
                     "is the yardstick.")
    head = "| metric | kind | paper mean | paper std | n | "
    head += f"paper, seed {r['seed']} | " if r["same_seed"] else ""
    head += "re-run | abs(x - mean) | tolerance | lands |"
    lines += ["", head, "|" + "---|" * (head.count("|") - 1)]
    for k, m in r["metrics"].items():
        p = m["paper"]
        kind = "quality" if m["decides"] else "cost (not deciding)"
        cells = [k, kind, _n(p["mean"]), _n(p["std"]), str(p["n"])]
        if r["same_seed"]:
            same = {True: " (identical)", False: " (differs)", None: ""}[m["identical"]]
            cells.append(_n(m["paper_seed"]) + same)
        cells += [_n(m["rerun"]), _n(m["deviation"]), _n(m["tolerance"]),
                  "yes" if m["lands"] else ("**no**" if m["decides"] else "no")]
        lines.append("| " + " | ".join(cells) + " |")
    s = r["setup"]
    lines += ["", f"Re-run: {s['rerun']['train_device']}, precision {s['rerun']['precision']}, commit "
                  f"{r['commit']}; the paper's: {s['paper']['train_device']}, precision {s['paper']['precision']}, "
                  f"commit {s['paper']['commit']}. Config hash {r['config_hash']}"
                  + (f" (the paper's build: {r['paper_config_hash']})." if r.get("paper_config_hash") else "."),
              f"Files: {r['run']} (training), {r['eval']} (evaluation).", ""]
    return "\n".join(lines)
