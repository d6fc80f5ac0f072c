"""The claims section's tables: the claims ledger with each claim's verdict and evidence (claims.tex),
and the source material's qualitative comparison of GANs, VAEs and diffusion models, each cell measured
(comparison.tex). Both are written by the claims step with the verdicts (`write_claims`), not by
`write_tables`."""
from __future__ import annotations

import functools
from pathlib import Path

from ...utils import load_json, save_json
from ..claims import evaluate, load_ledger, quantity
from ..formatting import duration, fmt, pm, sci
from ..verdicts import dynamics_study, guidance_study
from .booktabs import write_tex

CLAIM_TABLES = ("claims.tex", "comparison.tex")  # the files `write_claims` writes beside claims.json


def claims_table(result: dict, caption: str) -> str:
    """The ledger as a LaTeX longtable (booktabs; it may run over pages): claim, sources (each with the
    lines of its text that make the claim), verdict, evidence, grouped by topic."""
    lines = ["{\\small", "\\begin{longtable}{@{}p{0.24\\linewidth}p{0.12\\linewidth}p{0.13\\linewidth}"
             "p{0.42\\linewidth}@{}}",
             f"\\caption{{{caption}}}\\label{{tab:claims}}\\\\",
             "\\toprule", "Claim & Source & Verdict & Evidence (this build) \\\\", "\\midrule", "\\endfirsthead",
             "\\toprule", "Claim & Source & Verdict & Evidence (this build) \\\\", "\\midrule", "\\endhead",
             "\\bottomrule", "\\endfoot"]
    topic = None
    for r in result["claims"]:
        if r["topic"] != topic:
            if topic is not None:
                lines.append("\\addlinespace")
            topic = r["topic"]
        cite = sources_cell(r, result["sources"])
        word = verdict_text(r)
        lines.append(f"{r['claim']} & {cite} & {word} & {r['evidence']} \\\\")
    lines += ["\\end{longtable}", "}"]
    return "\n".join(lines) + "\n"


def sources_cell(row: dict, sources: dict) -> str:
    """A ledger row's sources as the table prints them: each ledger key, then its citation with the lines
    of the source's text where it makes the claim, 'S0~\\citep[l.~41--43, 50]{seed_comparative}', set ragged
    right in its narrow column; a row without passages (an older claims.json) cites the keys alone."""
    passages = row.get("passages") or {}
    out = []
    for s in row["sources"]:
        where = passages.get(s)
        note = "[l.~" + str(where).replace("-", "--") + "]" if where else ""
        out.append(f"{s}~\\citep{note}{{{sources[s]['key']}}}")
    return "{\\raggedright " + "; ".join(out) + "\\par}"


def verdict_text(row: dict) -> str:
    """A ledger row's verdict as the table prints it, with the reason of an inconclusive one:
    'inconclusive (one seed)', never a bare verdict that one seed cannot carry."""
    word = {"supported": "supported", "contradicted": "\\textbf{contradicted}", "equivalent": "equivalent",
            "inconclusive": "\\textit{inconclusive}", "not measured": "not measured"}[row["verdict"]]
    out = word + (f" ({row['reason']})" if row.get("reason") and row["verdict"] == "inconclusive" else "")
    m = row.get("matched")
    if m and m["kind_at"] != row["verdict"]:  # the verdict at matched training compute, where it differs
        out += f"; {m['kind_at']} at matched compute, {sci(m['at'])} FLOPs"
    if m and m["flip_at"]:
        out += f"; {m['kind_at']} from {sci(m['flip_at'])} FLOPs on"
    return out


CAPTION = ("The claims ledger (\\texttt{paper/claims.yaml}): each qualitative claim of the source material, the "
           "measurement that tests it in this build, and the verdict its rule gives (Section~\\ref{sec:claims}). "
           "Each source is named by its ledger key (S0--S4) and cited with the lines of its text that make the "
           "claim. "
           "Seed counts are given with every number; a comparison gives the effect (a ratio, or a difference for "
           "bounded metrics) with its 95\\% bootstrap interval over seeds (for FD$_\\infty$ over seeds and the samples "
           "within each seed) and its $p$-value adjusted for the "
           "ledger's many tests (Benjamini--Hochberg).")


def representative(summary: dict, ledger: dict, family: str) -> str | None:
    for n in ledger.get("representatives", {}).get(family, []):
        if n in summary["models"] and summary["models"][n]["n_ok"] > 0:
            return n
    return None


def comparison_cells(summary: dict, ledger: dict) -> dict:
    """The source material's qualitative comparison of GANs, VAEs and diffusion models, each cell
    measured: family -> aspect -> LaTeX text (the numbers behind the adjectives)."""
    out = {}
    for fam in ("gan", "vae", "diffusion"):
        n = representative(summary, ledger, fam)
        if n is None:
            continue
        m = summary["models"][n]
        q = functools.partial(quantity, summary, n)
        dyn = dynamics_study(summary, n)
        cells = {"model": m["display"]}
        if dyn:
            cv = fmt(dyn["cv"], 2) if dyn["cv"] is not None else "n/a"
            cells["stability"] = f"{dyn['n_failed']}/{dyn['n_runs']} short seed runs failed; seed CV of FD {cv}"
            cells["ease"] = (f"{dyn['n_draws_failed']}/{len(dyn['draws'])} random hyperparameter draws failed"
                             if dyn["draws"] else "n/a")
        else:
            div = len(m["diverged"])
            cells["stability"] = f"{div}/{m['n_seeds']} runs diverged"
            cells["ease"] = "not in the hyperparameter study"
        cells["time"] = (f"{fmt(q('ms_per_step')['mean'], 2)}\\,ms/step; trained "
                         f"{duration(q('train_seconds')['mean'])}") if q("ms_per_step") else "n/a"
        sp = q("sample_ms_per_image")
        flops = f"{sci(q('train_flops')['mean'])} training FLOPs; " if q("train_flops") else ""
        cells["resources"] = (f"{flops}{fmt(q('params')['mean'] / 1e6, 2)}M parameters; "
                              f"{fmt(q('nfe')['mean']) if q('nfe') else 'n/a'} NFE, "
                              f"{fmt(sp['mean'], 2) if sp else 'n/a'}\\,ms/image") if q("params") else "n/a"
        # FD extrapolated to infinite N first: the families' FDs carry finite-N biases that differ between models
        cells["quality"] = ((f"FD$_\\infty$ {pm(q('fd_inf'))}; " if q("fd_inf") else "") + f"FD {pm(q('fd'))}"
                            + (f"; blur {pm(q('blur'))}" if q("blur") else ""))
        cov = m.get("class_coverage")
        cells["diversity"] = f"recall {pm(q('recall'))}" + (
            f"; {cov['classes_covered']}/{cov['n_classes']} classes" if cov else "")
        cells["uses"] = _uses(summary, fam, n)
        out[fam] = cells
    return out


def _uses(summary: dict, fam: str, n: str) -> str:
    """What this build measured each family doing, beyond unconditional samples."""
    parts = []
    if fam == "gan":
        tr = summary.get("translation", {})
        if "cyclegan" in tr:
            t = tr["cyclegan"]["translation"]
            parts.append(f"CycleGAN: {fmt(100 * t['success_ab']['mean'], 2)}\\% / "
                         f"{fmt(100 * t['success_ba']['mean'], 2)}\\% of translations classified as the target")
        if "srgan" in tr:
            parts.append(f"super-resolution: PSNR {fmt(tr['srgan']['translation']['psnr']['mean'])}\\,dB")
        if quantity(summary, "cgan", "cond_accuracy"):
            parts.append(f"class control: accuracy {fmt(quantity(summary, 'cgan', 'cond_accuracy')['mean'], 2)}")
    elif fam == "vae":
        if quantity(summary, n, "recon_mse"):
            parts.append(f"reconstruction MSE {fmt(quantity(summary, n, 'recon_mse')['mean'], 2)}")
        if quantity(summary, n, "bpd"):
            parts.append(f"likelihood bound {fmt(quantity(summary, n, 'bpd')['mean'])} bits/dim")
        if quantity(summary, n, "probe:probe_acc"):
            parts.append(f"features: linear probe {fmt(quantity(summary, n, 'probe:probe_acc')['mean'], 2)}")
    else:
        if quantity(summary, n, "bpd"):
            parts.append(f"likelihood bound {fmt(quantity(summary, n, 'bpd')['mean'])} bits/dim")
        g = next((guidance_study(summary, x) for x in summary.get("guidance", {})), None)
        if g:
            parts.append(f"guided class accuracy up to {fmt(g['best_acc']['cond_accuracy']['mean'], 2)}")
    return "; ".join(parts) or "n/a"


ASPECTS = [("stability", "Training stability"), ("time", "Training time"), ("resources", "Resources"),
           ("quality", "Image quality"), ("diversity", "Output diversity"), ("ease", "Ease of tuning"),
           ("uses", "Uses measured here")]


def comparison_table(summary: dict, ledger: dict) -> str:
    cells = comparison_cells(summary, ledger)
    fams = [f for f in ("gan", "vae", "diffusion") if f in cells]
    head = {"gan": "GAN", "vae": "VAE", "diffusion": "Diffusion"}
    w = f"{0.78 / max(len(fams), 1):.2f}"
    lines = ["\\begin{tabular}{@{}p{0.16\\linewidth}" + f"p{{{w}\\linewidth}}" * len(fams) + "@{}}", "\\toprule",
             "Aspect & " + " & ".join(f"{head[f]} ({cells[f]['model']})" for f in fams) + " \\\\", "\\midrule"]
    for key, name in ASPECTS:
        lines.append(name + " & " + " & ".join(cells[f].get(key, "n/a") for f in fams) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def write_claims(summary_path: str | Path, ledger_path: str | Path, out: str | Path, tables: str | Path) -> dict:
    summary = load_json(summary_path)
    ledger = load_ledger(ledger_path)
    result = evaluate(summary, ledger)
    result["comparison"] = comparison_cells(summary, ledger)
    save_json(result, out)
    tables = Path(tables)
    tables.mkdir(parents=True, exist_ok=True)
    for name, text in zip(CLAIM_TABLES, (claims_table(result, CAPTION), comparison_table(summary, ledger))):
        write_tex(text, tables / name)
    c = result["counts"]
    print(f"{len(result['claims'])} claims: " + ", ".join(f"{v} {k}" for k, v in c.items()))
    return result
