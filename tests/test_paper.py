"""The paper: templates render from a summary with nothing left unfilled, comparative words
follow the numbers, and a LaTeX error points at the template an author edits."""
from __future__ import annotations

import functools
import inspect
import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from genreview import config as C
from genreview import provenance as prov
from genreview.publish.latex import LatexError, build_pdf
from genreview.models import DISPLAY, REGISTRY, build
from genreview.publish.render import RenderError, render, tex_escape
from genreview.publish.formatting import fmt, pm, times
from genreview.publish.verdicts import compare
from genreview.summary.collect import METRICS, TRAIN_METRICS, collect
from genreview.publish.tables.results import QUALITY
from genreview.publish.tables.claims import write_claims
from genreview.utils import save_json

from conftest import REPO, load_raw_config, smoke_hparams

PAPER = REPO / "paper"
QUALITY_KEYS = [q[0] for q in QUALITY]


# --------------------------------------------------------------------------- a complete fake summary

@functools.lru_cache(maxsize=None)
def _loss_keys(name: str) -> tuple[str, ...]:
    """The losses a family's train_step reports (what train_log.jsonl and final_loss hold)."""
    torch.manual_seed(0)
    model = build(name, smoke_hparams(name), (1, 28, 28))
    if model.classical:  # fitted in one call; its log line holds the loss only
        return ("loss",)
    return tuple(model.train_step(torch.rand(4, 1, 28, 28), torch.zeros(4, dtype=torch.long),
                                  model.configure_optimizers()))


def make_summary(tmp: Path, models=tuple(REGISTRY), seeds=(0, 1), diverged=(), no_fd_inf=()) -> Path:
    """summary.json built by the real `summary.collect` from fake but complete results files, shaped
    like what `train.train`, `evaluate.evaluate_run` and `evaluate.reference` write.

    Every metric gets a distinct value; models in `diverged` diverged in every seed; models in `no_fd_inf`
    were scored on too few samples for FD extrapolated to infinite N (`fd_infinity` gives None).
    """
    tmp.mkdir(parents=True, exist_ok=True)
    raw = load_raw_config()
    raw.update(profile="smoke", models=list(models), seeds=list(seeds))
    cfg = C.resolve(raw)
    files = []
    for i, m in enumerate(models):
        for s in seeds:
            spec = C.train_spec(cfg, m, s)
            train = {"model": m, "seed": s, "status": "ok", "diverged_at": None, "divergence": None,
                     "planned_steps": 400, "batch_size": 128, "precision": "fp32", "memory_format": "contiguous",
                     "calibration_ms": {}, "device": "Test CPU (1 threads)",
                     "final_loss": {**{k: 1.5 + 0.1 * j for j, k in enumerate(_loss_keys(m))},
                                    "step": 400, "epoch": 1.0, "wall": 12.0, "images": 51200},
                     "hparams": spec["hparams"], "train_config": spec["train"]}
            train.update({k: float(10 * (i + 1) + j + s) for j, k in enumerate(TRAIN_METRICS)})
            run = {"model": m, "seed": s, "status": "ok", "train": train, "device": "Test CPU (1 threads)"}
            if m in diverged:
                run["status"] = train["status"] = "diverged"
                train.update(diverged_at=17, divergence=DIVERGENCE)
            elif DISPLAY[m][1] == "translation":  # scored on translated test images, as evaluate writes it
                run["translation"] = _translation_metrics(m, i + 0.1 * s)
            else:
                run.update({k: 0.5 + 0.1 * i + 0.01 * j + 0.001 * s for j, k in enumerate(METRICS)
                            if k != "fid_inception"})
                run.update(fd=12.5 * (i + 1) + s, nfe=1 if m != "ddpm" else 50, kid_std=0.01, is_std=0.1,
                           n=C.eval_config(cfg)["n_samples_by_model"].get(m, 100),
                           sample_batch=256, sample_precision="fp32", class_histogram=[0.1] * 10)
                # FD extrapolated to infinite N lies below FD; the second model's far below (the ranking changes)
                run.update(fd_inf=run["fd"] - (20.0 if i == 1 else 0.4), fd_inf_slope=40.0)
                if m in no_fd_inf:
                    run.update(fd_inf=None, fd_inf_slope=None)
                if REGISTRY[m][0].style_mixing:
                    run["truncation"] = [{"psi": p, "n": 25, "fd": 20.0 - 5 * p, "precision": 0.9 - 0.3 * p,
                                          "recall": 0.1 + 0.4 * p, "density": 1.0, "coverage": 0.5}
                                         for p in (0.0, 0.5, 1.0)]
            files.append(tmp / f"{m}_seed{s}.json")
            save_json(run, files[-1])
    side = {k: 0.3 + 0.01 * j for j, k in enumerate(QUALITY_KEYS)}
    ref = {"floor": {**side, "fd": 0.61, "kid_std": 0.001, "is_std": 0.1, "n": 100,
                     "fd_inf": 0.21, "fd_inf_slope": 40.0, "fd_inf_sizes": 15, "fd_inf_n_min": 13, "fd_inf_draws": 10,
                     "class_histogram": [0.1] * 10},
           "ceiling": {**side, "fd": 361.6, "is": 1.08, "kid_std": 0.5, "is_std": 0.01, "n": 100},
           "n_samples": 100, "n_reference": 500, "device": "Test CPU (1 threads)"}
    save_json(ref, tmp / "reference.json")
    save_json({"test_accuracy": 0.8912, "steps": 1404, "features": 128, "params": 83418}, tmp / "classifier.json")
    manifest = {"dataset": "fashion_mnist", "root": "data",
                "train": {"n": 60000, "shape": [1, 28, 28], "sha1": "0" * 40},
                "test": {"n": 10000, "shape": [1, 28, 28], "sha1": "1" * 40}}
    save_json(manifest, tmp / "manifest.json")
    sweeps, guidance = _study_files(tmp, cfg, seeds, diverged)
    dynamics, probes = _gan_study_files(tmp, cfg, seeds, diverged)
    curves = _curve_files(tmp, cfg, seeds, diverged)
    args = {"cfg": C.summary_spec(cfg), "metrics_files": [str(f) for f in files],
            "reference": str(tmp / "reference.json"), "classifier": str(tmp / "classifier.json"),
            "manifest": str(tmp / "manifest.json"), "out": str(tmp / "summary.json"),
            "sweep_files": sweeps, "guidance_files": guidance, "dynamics_files": dynamics, "probe_files": probes,
            "curve_files": curves}
    params = inspect.signature(collect).parameters  # the manifest argument is recent; pass what collect takes
    collect(**{k: v for k, v in args.items() if k in params})
    return tmp / "summary.json"


def _study_files(tmp: Path, cfg: dict, seeds, diverged) -> tuple[list[str], list[str]]:
    """Fake sweep.json and guidance.json files shaped like `sweeps.sweep_run` and `guidance_run` write."""
    def scores(x):
        return {"fd": x, "kid": x / 1e3, "kid_std": 1e-4, "is": 5.0 - x / 100, "is_std": 0.1, "precision": 0.6,
                "recall": 0.5 - x / 1e3, "density": 0.8, "coverage": 0.7, "n": 50}

    sweeps, guidance = [], []
    for i, m in enumerate(C.sweep_models(cfg)):
        for s in seeds:
            ok = m not in diverged
            if not ok:
                pts = []
            elif REGISTRY[m][0].samplers:
                pts = [{"sampler": smp, "steps": k, "eta": 0.0, "nfe": k, "ms_per_image": 0.5 * k,
                        **scores(10.0 + 40.0 / k + (3.0 if smp == "ddpm" else 0.0) + i + 0.1 * s)}
                       for smp in ("ddim", "ddpm") for k in (2, 5)]
            else:
                pts = [{"sampler": "native", "steps": 1, "eta": None, "nfe": 1, "ms_per_image": 0.2,
                        **scores(20.0 + i + 0.1 * s)}]
            sweeps.append(str(tmp / f"sweep_{m}_seed{s}.json"))
            save_json({"model": m, "seed": s, "status": "ok" if ok else "diverged", "n": 50, "points": pts},
                      sweeps[-1])
    for m in C.guidance_models(cfg):
        for s in seeds:
            ok = m not in diverged
            pts = [{"guidance": w, "nfe": 5 if w == 0 else 10, "ms_per_image": 1.0, "cond_accuracy": 0.5 + 0.1 * w,
                    "cond_accuracy_by_class": [0.5] * 10, **scores(15.0 + (w - 1) ** 2 + 0.1 * s)}
                   for w in (0.0, 2.0)] if ok else []
            guidance.append(str(tmp / f"guidance_{m}_seed{s}.json"))
            save_json({"model": m, "seed": s, "status": "ok" if ok else "diverged", "n": 50, "points": pts},
                      guidance[-1])
    return sweeps, guidance


def _translation_metrics(m: str, x: float) -> dict:
    """The numbers `evaluation.translation` returns (without its grids) for CycleGAN or super-resolution."""
    if m == "cyclegan":
        return {"domain_a": 7, "domain_b": 9, "n_a": 50, "n_b": 50, "success_ab": 0.8 - x / 100,
                "success_ba": 0.7, "cycle_l1_aba": 0.05, "cycle_l1_bab": 0.06, "cycle_mse_aba": 0.01,
                "cycle_mse_bab": 0.012, "fd_ab": 20.0 + x, "fd_ba": 25.0, "kid_ab": 0.02, "kid_ba": 0.03,
                "fd_ab_identity": 90.0, "fd_ba_identity": 90.0, "translate_ms_per_image": 0.4}
    return {"n": 50, "psnr": 24.0 - x / 10, "ssim": 0.9, "fd": 3.0 + x, "kid": 0.001, "psnr_bicubic": 22.0,
            "ssim_bicubic": 0.85, "fd_bicubic": 30.0, "kid_bicubic": 0.02, "fd_original": 0.7,
            "upscale_ms_per_image": 0.1}


def _gan_study_files(tmp: Path, cfg: dict, seeds, diverged) -> tuple[list[str], list[str]]:
    """Fake dynamics.json and probes.json files shaped like `dynamics.dynamics_run` and `probes.probe_run`
    write; one short run of each model diverges and one collapses."""
    dynamics, probes = [], []
    for i, m in enumerate(C.dynamics_models(cfg)):
        runs = []
        for j, (kind, seed) in enumerate([("seed", 0), ("seed", 1), ("seed", 2), ("draw", 0), ("draw", 0),
                                          ("detach", 0), ("detach", 1), ("leak", 0), ("leak", 1)]):
            if kind in ("detach", "leak") and m != "dcgan":
                continue
            run = {"label": f"{kind}{j}", "kind": kind, "seed": seed, "batch_size": 64, "hparams": {},
                   "status": "ok", "steps": 3, "ms_per_step": 10.0 + j, "train_seconds": 0.1,
                   "g_grad_in_d_step": 0.5 if kind in ("detach", "leak") else 0.0,
                   "g_update_cos": 0.3 if kind == "leak" else None}
            if j == 4:
                run["status"] = "diverged"
            else:
                run.update(fd=30.0 + 5 * i + j, kid=0.01, precision=0.5, recall=0.4, density=0.9, coverage=0.6,
                           classes_covered=3 if j == 3 else 10, n_classes=10, class_kl=0.1 * j, class_tv=0.05,
                           collapsed=j == 3, d_real=0.6, d_fake=0.4)
            runs.append(run)
        dynamics.append(str(tmp / f"dynamics_{m}.json"))
        save_json({"model": m, "seed": seeds[0], "status": "ok", "n": 50, "steps": 3, "runs": runs},
                  dynamics[-1])
    for i, m in enumerate(C.probe_models(cfg)):
        for s in seeds:
            ok = m not in diverged
            r = {"model": m, "seed": s, "status": "ok" if ok else "diverged"}
            if ok:
                r.update(ppl=100.0 + 10 * i + s, ppl_median=90.0, ppl_pairs=20, ppl_eps=0.01, ppl_space="z (slerp)",
                         recon_mse=0.02 + 0.01 * i, recon_kind="encoder" if m == "vae" else "inversion",
                         probe_feature="encoder" if m == "vae" else "discriminator", probe_acc=0.7 + 0.01 * i,
                         probe_acc_pixels=0.75, probe_dim=64, probe_seconds=1.0)
            probes.append(str(tmp / f"probes_{m}_seed{s}.json"))
            save_json(r, probes[-1])
    return dynamics, probes


def _curve_files(tmp: Path, cfg: dict, seeds, diverged) -> list[str]:
    """Fake curve.json files shaped like `curves.curve_run` writes. FD (as a multiple of the threshold)
    falls with training: the first curve model reaches the threshold between snapshots and ends lowest,
    the second reaches it at its first snapshot but ends higher (a reversal that fixed budgets hide), the
    third never does; a diverged model's curve stops after two snapshots."""
    files = []
    threshold = C.curves_config(cfg)["threshold"]
    shapes = [(1.8, 1.2, 0.5), (0.95, 0.9, 0.85), (2.0, 1.8, 1.5)]
    for i, m in enumerate(C.curve_models(cfg)):
        for s in seeds:
            rows = []
            for j, step in enumerate((4, 20, 100)):
                if m in diverged and j >= 2:
                    break
                fd = threshold * shapes[i % 3][j] + 0.5 * s
                rows.append({"step": step, "images": 128 * step, "wall": (2.0 + i) * step * (1 + 0.1 * s), "fd": fd,
                             "kid": fd / 1e3, "kid_std": 1e-4, "is": 3.0, "is_std": 0.1, "precision": 0.6,
                             "recall": 0.4, "density": 0.8, "coverage": 0.5, "n": 64, "sample_ms": 0.5 + i,
                             "key": "0" * 16})
            files.append(str(tmp / f"curve_{m}_seed{s}.json"))
            save_json({"model": m, "seed": s, "status": "diverged" if m in diverged else "ok", "n": 64,
                       "threshold": threshold, "sampler": "ddim" if m == "ddpm" else "native",
                       "sampler_steps": 5 if m == "ddpm" else None, "nfe": 5 if m == "ddpm" else 1,
                       "planned_steps": 100, "train_seconds": 300.0, "rows": rows}, files[-1])
    return files


LEFTOVERS = [(re.compile(r"\\VAR\{"), "an unrendered \\VAR{"), (re.compile(r"\\BLOCK\{"), "an unrendered \\BLOCK{"),
             (re.compile(r"\bNone\b"), "Python's None"), (re.compile(r"(?<!\\)\bnan\b"), "a nan"),
             (re.compile(r"(?<!\\)\binf\b"), "an inf"), (re.compile(r"Undefined"), "a jinja Undefined")]


def make_provenance(tmp: Path, gpu: bool = False) -> Path:
    """provenance.json built by the real `provenance.build` from two fake benchmark files and one that is
    missing, with a fixed fake machine (with or without a GPU)."""
    bench = tmp / "benchmarks"
    (bench / "train").mkdir(parents=True, exist_ok=True)
    head = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    (bench / "train" / "vae_seed0.tsv").write_text(head + "121.06\t0:02:01\t1007.36\t3823\t604\t804\t49\t61\t9\t5\n")
    (bench / "summarize.tsv").write_text(head + "4.19\t0:00:04\tNA\tNA\tNA\tNA\tNA\tNA\tNA\tNA\n")
    files = {"train": [str(bench / "train" / "vae_seed0.tsv"), str(bench / "train" / "dcgan_seed0.tsv")],
             "summarize": [str(bench / "summarize.tsv")]}
    raw = load_raw_config()
    raw["profile"] = "smoke"
    record = prov.build(C.resolve(raw), files)
    record["hardware"] = {"cpu": "Test CPU_x 2.0GHz", "machine": "x86_64", "cores": 2, "cores_available": 1,
                          "ram_gib": 7.5, "gpu": "Test GPU" if gpu else "none", "gpu_memory_gib": 16.0 if gpu else None}
    save_json(record, tmp / "provenance.json")
    return tmp / "provenance.json"


def _render(tmp: Path, summary: Path, templates: Path = PAPER, provenance: str | None = "cpu") -> list[Path]:
    """Render as the pipeline does: the claims ledger evaluated first (rule claims), then the templates,
    with a fake provenance record ("cpu", "gpu"; None: without one)."""
    claims = None
    if (templates / "claims.yaml").exists():
        claims = tmp / "claims.json"
        write_claims(summary, templates / "claims.yaml", claims, tmp / "tables")
    record = make_provenance(tmp / "provenance", gpu=provenance == "gpu") if provenance else None
    return render(templates, summary, tmp / "build" / "paper", tmp / "figures", tmp / "tables", claims=claims,
                  provenance=record)


DIVERGENCE = "loss nan at step 17"  # as the trainer words it; the paper may quote it


def _check_clean(paths):
    for p in paths:
        if p.suffix != ".tex":
            continue
        for n, line in enumerate(p.read_text().replace(tex_escape(DIVERGENCE), "").splitlines(), 1):
            for pattern, what in LEFTOVERS:
                assert not pattern.search(line), f"{p.name}:{n} holds {what}: {line!r}"


@pytest.mark.parametrize("case", ["all models, two seeds", "one seed", "one model diverged", "only the vae",
                                  "no provenance record", "a GPU", "no FD_inf", "some models without FD_inf"])
def test_templates_render_without_leftovers(case, tmp_path):
    kwargs = {"all models, two seeds": {}, "one seed": {"seeds": (0,)}, "one model diverged": {"diverged": ("dcgan",)},
              "only the vae": {"models": ("vae",)}, "no provenance record": {"seeds": (0,)},
              "a GPU": {"seeds": (0,)}, "no FD_inf": {"seeds": (0,), "no_fd_inf": tuple(REGISTRY)},
              "some models without FD_inf": {"no_fd_inf": ("vae", "ddpm", "wgan", "gmm", "pixelcnn")}}[case]
    provenance = {"no provenance record": None, "a GPU": "gpu"}.get(case, "cpu")
    summary = make_summary(tmp_path / "results", **kwargs)
    written = _render(tmp_path, summary, provenance=provenance)
    templates = sorted(p.relative_to(PAPER) for p in PAPER.rglob("*.tex.j2"))
    tex = sorted(p.relative_to(tmp_path / "build" / "paper") for p in written if p.suffix == ".tex")
    assert tex == [t.with_suffix("") for t in templates], "every template gives one .tex file"
    assert (tmp_path / "build" / "paper" / "main.tex").exists()
    for p in written:
        if p.suffix == ".tex":
            assert p.read_text().startswith("% Generated from "), f"{p} lacks its provenance line"
    _check_clean(written)
    main = (tmp_path / "build" / "paper" / "main.tex").read_text()
    assert "smoke" in main, "the rendered paper does not name its build profile"
    appendix = (tmp_path / "build" / "paper" / "sections" / "appendix.tex").read_text()
    assert ("tab:compute" in appendix) == (provenance is not None), "the appendix's tables follow the record"
    if provenance:
        record = json.loads((tmp_path / "provenance" / "provenance.json").read_text())
        assert record["total"]["n_jobs"] == 2 and len(record["missing"]) == 1, record
        assert record["config_hash"] in appendix and r"Test CPU\_x" in appendix, appendix
        assert ("Test GPU" in appendix) == (provenance == "gpu")
        assert ("without a GPU" in appendix) == (provenance != "gpu")
        assert "1 job left no benchmark file" in " ".join(appendix.split()), "the missing benchmark is not stated"


def _prose(tex: str) -> str:
    """Rendered LaTeX without comments and math, where a ')' may legitimately touch a letter."""
    tex = re.sub(r"(?m)(?<!\\)%.*$", "", tex)
    tex = re.sub(r"\$\$.*?\$\$|\$[^$]*\$|\\\[.*?\\\]|\\\(.*?\\\)", " ", tex, flags=re.S)
    return re.sub(r"\\begin\{(equation|align|gather|multline)\*?\}.*?\\end\{\1\*?\}", " ", tex, flags=re.S)


def test_block_tags_do_not_glue_words(tmp_path):
    """trim_blocks eats the newline after a \\BLOCK tag that ends a line; text on both sides then touches."""
    written = _render(tmp_path, make_summary(tmp_path / "results"))
    glued = []
    for p in written:
        if p.suffix == ".tex":
            text = _prose(p.read_text())
            glued += [f"{p.name}: ...{text[max(0, m.start() - 40):m.end() + 15]!r}"
                      for m in re.finditer(r"\)[A-Za-z]|[a-z]\.[A-Z][a-z]|[a-z]{2}\(", text)]
    assert not glued, "words glued together across a template tag:\n" + "\n".join(glued)


def test_undefined_names_raise_render_error(tmp_path):
    summary = make_summary(tmp_path / "results", seeds=(0,))
    for body in [r"\VAR{no_such_name}", r"\VAR{s.no_such_key}", r"\BLOCK{for x in nothing}\VAR{x}\BLOCK{endfor}"]:
        templates = tmp_path / "tpl"
        shutil.rmtree(templates, ignore_errors=True)
        (templates / "sections").mkdir(parents=True)
        (templates / "sections" / "broken.tex.j2").write_text(f"First line.\n{body}\nLast line.\n")
        with pytest.raises(RenderError) as e:
            _render(tmp_path, summary, templates)
        msg = str(e.value)
        assert "sections/broken.tex.j2" in msg, f"RenderError does not name the template:\n{msg}"
        assert "Undefined" in msg, msg
    # The control: the same kind of template with defined names renders.
    (templates / "sections" / "broken.tex.j2").write_text(r"\VAR{s.profile} \VAR{fmt(ref.floor.fd)}" + "\n")
    out = _render(tmp_path, summary, templates)
    assert out[0].read_text().splitlines()[1] == "smoke 0.610"


def test_tex_escape():
    assert tex_escape("a_b & 50% #1 $x$ {y} ~ ^") == \
        r"a\_b \& 50\% \#1 \$x\$ \{y\} \textasciitilde{} \^{}"
    assert tex_escape("C:\\dir") == r"C:\textbackslash{}dir"


# --------------------------------------------------------------------------- words and numbers

def st(mean, std=0.0, n=1):
    """A seed stat with n values of this mean and sample standard deviation."""
    z = [0.0] if n == 1 else [(2 * i - (n - 1)) for i in range(n)]
    scale = (sum(x * x for x in z) / (n - 1)) ** 0.5 if n > 1 else 1.0
    return {"mean": mean, "std": std, "n": n, "values": [mean + std * x / scale for x in z]}


def test_compare_picks_the_word_from_the_numbers():
    """compare(a, b, metric, words): words = (a's value lower, a's value higher); the direction of "better"
    is the metric table's, not the template's."""
    low, high = st(10.0, 0.5, 3), st(20.0, 0.5, 3)
    assert compare(low, high, "fd").word == "lower than"
    assert compare(high, low, "fd").word == "higher than"
    assert compare(high, low, "is").word == "higher than"
    assert compare(low, high, "sample_ms_per_image", ("faster than", "slower than")).word == "faster than"
    assert compare(low, high, "fd", ("better than", "worse than")).word == "better than"
    assert str(compare(low, high, "fd")) == "lower than"


def test_compare_ties_and_decisiveness():
    """"About the same as" only when the whole interval lies inside the margin; decisive only with seeds."""
    assert compare(st(10.0, 0.05, 3), st(10.1, 0.05, 3), "fd").word == "about the same as"
    assert compare(st(10.0), st(10.1), "fd").word == "lower than", "one seed: no interval, so never equivalent"
    wide = compare(st(10.0, 3.0, 3), st(10.1, 3.0, 3), "fd")
    assert wide.word == "lower than" and wide.kind == "inconclusive", "a wide interval is not a tie"
    c = compare(st(10.4, 0.1, 3), st(20.8, 0.2, 3), "fd")
    assert c.decisive and c.n == 3 and c.ratio == pytest.approx(0.5) and (c.a, c.b) == ("10.4", "20.8")
    assert c.evidence == "3 seeds each; FD 0.500$\\times$ [0.489, 0.511]"
    assert not compare(st(10.0, 6.0, 3), st(20.0, 6.0, 3), "fd").decisive, "the interval includes no difference"
    assert not compare(st(10.0), st(20.0), "fd").decisive, "one seed is never decisive"


def test_model_comparisons_quote_fd_inf_not_fd(tmp_path):
    """Two models' quality is compared by FD extrapolated to infinite N: FD's finite-N bias differs between
    models and N. The sentences quote the FD_inf means and take their word from them, even where FD would
    order the two models the other way."""
    path = make_summary(tmp_path / "results")
    s = json.loads(path.read_text())
    #            FD      FD_inf: FD and FD_inf order VAE/DCGAN and WGAN-GP/WGAN oppositely
    values = {"vae": (41.7, 23.9), "dcgan": (38.2, 29.4), "ddpm": (52.6, 17.3), "wgan_gp": (44.4, 33.8),
              "wgan": (47.1, 26.2)}
    for name, (fd, fd_inf) in values.items():
        s["models"][name]["metrics"]["fd"] = st(fd, 0.3, 2)
        s["models"][name]["metrics"]["fd_inf"] = st(fd_inf, 0.3, 2)
    save_json(s, path)
    _render(tmp_path, path)
    out = tmp_path / "build" / "paper" / "sections"

    def text(section):
        return " ".join((out / f"{section}.tex").read_text().split())

    discussion, results, gan = text("discussion"), text("results"), text("gan")
    assert "by FD extrapolated to infinite $N$ (FD$_\\infty$)" in discussion, "named in full at its first use"
    assert "By FD$_\\infty$ the VAE scores better than the DCGAN (23.9 vs.\\ 29.4;" in discussion, discussion
    assert "41.7" not in discussion and "38.2" not in discussion
    assert "DCGAN's FD$_\\infty$ is higher than VAE's (29.4 vs.\\ 23.9;" in results, results
    assert "DDPM's FD$_\\infty$ is lower than DCGAN's (17.3 vs.\\ 29.4;" in results, results
    assert "is higher than weight clipping's (33.8 vs.\\ 26.2;" in gan, gan
    assert re.search(r"FD\$_\\infty\$ \$?-?[0-9.]+\$? \[", results), "the evidence is FD_inf's interval"
    for quoted in ("(41.7 vs.", "(38.2 vs.", "(52.6 vs.", "(44.4 vs."):
        assert quoted not in discussion + results + gan, f"a comparison quotes an FD: {quoted}"


def test_times_reads_near_one():
    """times() never writes 'about as as much' or 'about as faster' (the phrase it is given finishes it)."""
    assert times(1.0, "as much") == "about as much" and times(1.02, "faster") == "about as fast"
    assert times(0.97) == "about" and times(3.21, "faster") == "3.2 times faster" and times(3.21) == "3.2 times"
    assert times(2.0, "as much") == "2 times as much" and times(None) == "n/a"
    with pytest.raises(ValueError, match="unknown phrase"):
        times(2.0, "quicker")


def test_number_formatting():
    assert fmt(0.0123456) == "0.0123"
    assert fmt(361.6234) == "362" and fmt(42.0) == "42"
    assert fmt(12345.6) == "12346", "large numbers keep their integer digits"
    assert fmt(0.5, decimals=2) == "0.50"
    assert fmt(None) == "n/a" and fmt(float("nan")) == "n/a" and fmt(float("inf")) == "n/a"
    assert fmt(0) == "0" and fmt(-0.0) == "0"
    assert pm(st(1.23456)) == "1.23", "a single seed shows the mean alone"
    assert pm(st(1.23456, 0.0123, 3)) == r"$1.235 \pm 0.012$"
    assert pm(st(12.3456, 1.56, 3), math_mode=False) == r"12.3 \pm 1.6"
    assert pm(st(0.002, 0.0004, 2), scale=1e3) == r"$2.00 \pm 0.40$"
    assert pm({"mean": None, "std": None, "n": 0}) == "n/a" and pm({}) == "n/a"


def test_column_decimals():
    from genreview.publish.formatting import column_decimals

    assert column_decimals([0.62, st(130.8), 361.6, None]) == 2, "two significant digits of the smallest value"
    assert column_decimals([st(45.3, 0.0123, 3), 0.62]) == 3, "two significant digits of the smallest spread"
    assert column_decimals([-0.0054, 9.4], scale=1e3) == 1 and column_decimals([0.0, 12.0]) == 0
    assert column_decimals([1e-9]) == 3 and column_decimals([1e-9], max_decimals=5) == 5 and column_decimals([]) == 0


def _decimals_of(cell: str) -> set[int]:
    return {len(x.split(".")[1]) if "." in x else 0 for x in re.findall(r"-?\d+(?:\.\d+)?", cell)}


def test_results_and_cost_tables_align_decimals_and_state_n(tmp_path):
    """Every number of a results or cost table column has the same decimals; FD's header names N, and a model
    scored at another N (PixelCNN in the smoke config) is marked; FD extrapolated to infinite N and KID follow FD."""
    from genreview.publish.tables.results import OTHER_N, cost_table, results_table

    summary = json.loads(make_summary(tmp_path / "results").read_text())
    df = results_table(summary)
    cols = list(df.columns)
    assert cols[1] == "FD ($N{=}100$) $\\downarrow$", cols
    assert cols[2].startswith("FD$_\\infty$") and cols[3].startswith("KID"), cols
    pixelcnn = df[df["Model"] == "PixelCNN"].iloc[0]
    assert pixelcnn[cols[1]].endswith(OTHER_N) and pixelcnn["$N$"] == "50", pixelcnn.tolist()
    assert not df[df["Model"] == "VAE"].iloc[0][cols[1]].endswith(OTHER_N)
    assert df[df["Model"] == "VAE"].iloc[0]["Seeds"] == "2/2"
    cost_skip = {"Model", "Train time", "Train FLOPs", "NFE"}  # times carry units, FLOPs their exponent
    for table, skip in ((df, {"Model", "$N$", "Seeds"}), (cost_table(summary), cost_skip)):
        for col in table.columns:
            if col in skip:
                continue
            found = set().union(*(_decimals_of(c.replace(OTHER_N, "")) for c in table[col] if c != "n/a"))
            assert len(found) == 1, f"column {col!r} mixes decimals {found}: {table[col].tolist()}"


# --------------------------------------------------------------------------- LaTeX errors

def test_latex_error_names_the_template_and_line(tmp_path):
    if shutil.which("latexmk") is None:
        pytest.skip("latexmk is not installed")
    templates = tmp_path / "paper"
    shutil.copytree(PAPER, templates)
    # The first section main.tex \inputs: nothing before it needs figures or tables.
    main = (templates / "main.tex.j2").read_text()
    first = re.search(r"\\input\{(sections/[^}]+)\}", main).group(1)
    section = templates / f"{first}.tex.j2"
    lines = section.read_text().splitlines()
    lines.insert(1, r"\undefinedmacro")
    section.write_text("\n".join(lines) + "\n")

    summary = make_summary(tmp_path / "results", seeds=(0,))
    out = tmp_path / "build" / "paper"
    render(templates, summary, out, tmp_path / "figures", tmp_path / "tables")
    with pytest.raises(LatexError) as e:
        build_pdf(out, tmp_path / "build" / "review.pdf")
    msg = str(e.value)
    assert f"paper/{first}.tex.j2" in msg, f"the error does not name the template paper/{first}.tex.j2:\n{msg}"
    assert "(near line 2)" in msg, f"the error does not point at the template line:\n{msg}"
    assert r"\undefinedmacro" in msg and "Undefined control sequence" in msg, msg
    assert not (tmp_path / "build" / "review.pdf").exists()


# --------------------------------------------------------------------------- no hand-typed numbers

# Template tags (their numbers are computed or formatted from the summary), and commands whose argument is
# a key, not prose.
_TAGS = re.compile(r"\\VAR\{(?:[^{}]|\{[^{}]*\})*\}|\\BLOCK\{(?:[^{}]|\{[^{}]*\})*\}|\\#\{.*?\}")
_KEYS = re.compile(r"\\(?:cite[pt]?|ref|label|includegraphics|input|usepackage|documentclass)(?:\[[^]]*\])?\{[^}]*\}")
# What a measurement looks like in prose: a decimal, a percentage, or a number with a unit of time or information.
_MEASURED = re.compile(r"(?<![\w.\\{-])(\d+\.\d+|\d+(?:\.\d+)?\s*(?:\\%|(?:\\,|~| )?(?:ms|s|min|h|dB|nats)\b))")


def hand_typed_numbers(text: str) -> list[tuple[int, str]]:
    """(line, number) for each measured-looking number in a template's prose, outside \\VAR and \\BLOCK tags."""
    hits = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("%"):
            continue
        body = _KEYS.sub(" ", _TAGS.sub(" ", line))
        hits += [(n, m.group(1)) for m in _MEASURED.finditer(body)]
    return hits


def test_no_template_types_a_measured_number_by_hand():
    found = [f"{p.relative_to(REPO)}:{n}: {num}" for p in sorted(PAPER.rglob("*.j2"))
             for n, num in hand_typed_numbers(p.read_text())]
    assert not found, ("numbers typed into the paper by hand; print them from the summary with \\VAR{...}:\n"
                       + "\n".join(found))


@pytest.mark.parametrize("line, numbers", [
    ("FD fell to 12.5 after training", ["12.5"]),
    ("a step took 40\\,ms and 3 s in all", ["40\\,ms", "3 s"]),
    ("accuracy 91\\% on the test split", ["91\\%"]),
    ("FD \\VAR{fmt(metric('vae', 'fd').mean)} on $28 \\times 28$ images", []),
    ("\\BLOCK{if x > 0.5}two\\BLOCK{endif} seeds", []),
    ("see Figure~\\ref{fig:2.1} and \\citep{ho2020}", []),
])
def test_the_lint_finds_measured_looking_numbers(line, numbers):
    assert [num for _, num in hand_typed_numbers(line)] == numbers


def test_scatter_labels_are_moved_apart():
    """Labels of models whose points nearly coincide end up not overlapping (adjustText), and the figures draw."""
    import matplotlib.pyplot as plt
    from genreview.publish.figures.quality import _place_labels

    fig, ax = plt.subplots(figsize=(3.3, 2.4))
    pts = [(1.0, 10.0), (1.02, 10.3), (1.04, 10.1), (1.01, 9.8)]
    ax.scatter(*zip(*pts))
    ax.set_xlim(0.5, 1.5)
    ax.set_ylim(5, 15)
    texts = [ax.text(x, y, f"Model number {i}", fontsize=7) for i, (x, y) in enumerate(pts)]
    _place_labels(ax, texts, pts)
    fig.canvas.draw()
    boxes = [t.get_window_extent() for t in texts]
    overlaps = [(i, j) for i in range(len(boxes)) for j in range(i + 1, len(boxes)) if boxes[i].overlaps(boxes[j])]
    plt.close(fig)
    assert not overlaps, overlaps


def test_every_model_name_prints_as_latex_image_to_image_models_too(tmp_path):
    """The title page lists each model's seeds by name: an image-to-image model (summary["translation"]) gets
    its display name, and an unknown id is escaped, never a bare underscore that stops LaTeX."""
    from genreview.publish.render import context
    s = {"models": {"vae": {"display": "VAE", "n_ok": 1}}, "translation": {"sr_l1": {"display": "SR (L1)"}},
         "reference": {}, "classifier": {}, "order": ["vae"]}
    display = context(s, tmp_path, tmp_path, tmp_path)["display"]
    assert [display(k) for k in ("vae", "sr_l1", "new_model")] == ["VAE", "SR (L1)", "new\\_model"]
