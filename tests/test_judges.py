"""Several judges of sample quality (evaluation/judges.py): a second classifier of another architecture and a
label-free autoencoder train in seconds; every judge puts a set of images at FD ~0 from itself and noise far
from real images; judges.json holds every judge and metric; a file of the wrong judge is refused with its
rebuild command; the config section is validated against its dataclass."""
from __future__ import annotations

import dataclasses
import json
import shutil
import time

import pytest
import torch

from conftest import CPU, load_raw_config, smoke_config
from genreview import config as C
from genreview import data as D
from genreview.evaluation import judges as J
from genreview.evaluation.classifier import DomainClassifier
from genreview.evaluation.metrics import EvalConfig, Reference, uniform_noise
from genreview.files import ResultsFileError
from genreview.utils import torch_save

pytestmark = pytest.mark.filterwarnings("ignore:Metric .* will save all extracted features:UserWarning")

N = 300  # images per side
TINY = {"epochs": 8, "max_steps": 60, "batch_size": 64, "resnet_width": 8, "resnet_features": 32, "ae_width": 8,
        "ae_latent": 16}


@pytest.fixture(scope="module")
def few_train(small_train) -> D.Split:
    """A few hundred training images."""
    return D.Split(small_train.images[:512], small_train.labels[:512])


@pytest.fixture(scope="module")
def real_test(test_split):
    g = torch.Generator().manual_seed(0)
    return test_split.images[torch.randperm(len(test_split), generator=g)[:N]]


@pytest.fixture(scope="module")
def trained(few_train, test_split):
    """judge -> (network, record, seconds), each trained on 512 images."""
    cfg = J.JudgesConfig(**TINY)
    test = D.Split(test_split.images[:500], test_split.labels[:500])
    out = {}
    for i, name in enumerate(J.TRAINED):
        t = time.perf_counter()
        net, rec = J.train_judge(name, cfg, few_train, test, CPU, cfg.seed + i)
        out[name] = (net, rec, time.perf_counter() - t)
    return out


@pytest.fixture(scope="module")
def judge_build(fmnist_root, tmp_path_factory):
    """The `train_judges` job of the smoke profile (capped further), run by the real code: its folder."""
    spec = C.judges_spec(smoke_config(fmnist_root))
    spec["device"] = "cpu"
    spec["judges"].update(TINY)
    out = tmp_path_factory.mktemp("judges")
    J.train_judges(spec, out)
    return out


def _fake_eval(tmp_path, images, status="ok") -> tuple:
    """An `evaluate` job's samples.pt and metrics.json holding `images` as the run's samples."""
    torch_save({"grid": images[:64], "samples": images}, tmp_path / "samples.pt")
    (tmp_path / "metrics.json").write_text(json.dumps({"status": status}))
    return tmp_path / "samples.pt", tmp_path / "metrics.json"


def _judge_spec(fmnist_root, model="vae", seed=0) -> dict:
    spec = C.judge_spec(smoke_config(fmnist_root), model, seed)
    spec["device"] = "cpu"
    spec["judges"].update(TINY)
    return spec


def test_the_judges_train_in_seconds_and_differ_in_architecture(trained, few_train):
    for name, (net, rec, secs) in trained.items():
        assert secs < 30, f"judge {name} took {secs:.1f}s to train on {len(few_train)} images"
        assert rec["steps"] == TINY["max_steps"], rec
        assert not net.training and not any(p.requires_grad for p in net.parameters()), "a judge must be frozen"
    resnet, ae = trained["resnet"][0], trained["autoencoder"][0]
    kinds = {type(resnet), type(ae), DomainClassifier}
    assert len(kinds) == 3, "the judges must be three architectures"
    assert any(isinstance(m, J._Residual) for m in resnet.modules())
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in resnet.modules()), "not DomainClassifier's pooling"
    assert trained["resnet"][1]["test_accuracy"] > 0.3, trained["resnet"][1]
    assert trained["autoencoder"][1]["test_mse"] < 0.1, trained["autoencoder"][1]
    assert getattr(ae, "head", None) is None and not trained["autoencoder"][1]["labels"]


def test_the_autoencoder_never_sees_a_label(few_train, test_split):
    """Trained on the same images with the labels scrambled, the autoencoder ends with the same weights."""
    cfg = J.JudgesConfig(**{**TINY, "max_steps": 5})
    test = D.Split(test_split.images[:100], test_split.labels[:100])
    scrambled = D.Split(few_train.images, few_train.labels[torch.randperm(len(few_train))])
    a, _ = J.train_judge("autoencoder", cfg, few_train, test, CPU, 7)
    b, _ = J.train_judge("autoencoder", cfg, scrambled, test, CPU, 7)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k


def test_every_judge_puts_a_set_at_zero_from_itself_and_noise_far_away(trained, tiny_classifier, real_test,
                                                                        train_split):
    clf, _ = tiny_classifier
    cfg = EvalConfig(n_samples=N, n_reference=N, kid_subset_size=50, kid_subsets=10, is_splits=5)
    real_train = train_split.images[-N:]
    noise = uniform_noise(N, (1, 28, 28), seed=3)
    for name, net in {"domain": clf, "resnet": trained["resnet"][0], "autoencoder": trained["autoencoder"][0]}.items():
        ref = Reference.from_images(net, real_test, cfg)
        same, other, bad = ref.score(real_test), ref.score(real_train), ref.score(noise)
        assert abs(same["fd"]) < 1e-2 * other["fd"] + 1e-3, f"{name}: FD(test, test) = {same['fd']:.4g}"
        assert same["precision"] == 1.0 and same["recall"] == 1.0, name
        assert bad["fd"] > 5 * other["fd"], f"{name}: noise FD {bad['fd']:.4g} vs real {other['fd']:.4g}"
        assert bad["kid"] > 5 * other["kid"] and bad["coverage"] < other["coverage"], name
        assert ("is" in same) == (name != "autoencoder"), "the label-free judge has no Inception Score"


def test_train_judges_writes_each_judge_its_reference_and_its_floor(judge_build):
    info = json.loads((judge_build / "judges.json").read_text())
    assert set(info) == set(J.TRAINED)
    for name, rec in info.items():
        assert (judge_build / f"{name}.pt").is_file() and (judge_build / f"{name}_reference.pt").is_file()
        assert rec["digest"] == J.judge_digest(judge_build / f"{name}.pt", name)
        assert set(J.METRICS) <= set(rec["floor"]) and set(J.METRICS) <= set(rec["ceiling"])
        assert rec["ceiling"]["fd"] > rec["floor"]["fd"], rec


def test_judges_json_has_every_judge_and_metric(judge_build, fmnist_root, tiny_classifier_dir, train_split,
                                                tmp_path):
    spec = _judge_spec(fmnist_root)
    images = train_split.images[:100]
    samples, metrics = _fake_eval(tmp_path, images)
    t = time.perf_counter()
    res = J.judge_run(spec, samples, metrics, tiny_classifier_dir / "classifier.pt", judge_build, tmp_path / "out")
    secs = time.perf_counter() - t
    on_disk = json.loads((tmp_path / "out" / "judges.json").read_text())
    assert on_disk == json.loads(json.dumps(res))
    assert on_disk["status"] == "ok" and on_disk["n"] == len(images) and on_disk["model"] == "vae"
    assert set(on_disk["judges"]) == set(J.JUDGES)  # save_json sorts the keys
    for name, scores in on_disk["judges"].items():
        assert set(J.METRICS) <= set(scores), (name, scores)
        assert all(scores[k] is not None for k in J.METRICS if k not in ("fd_inf", "fd_inf_boot")), (name, scores)
        assert (scores["fd_inf_boot"] is None) == (scores["fd_inf"] is None), (name, scores)  # replicates with FD_inf
        assert scores["digest"] and scores["features"] > 1
    # the domain judge gives the protocol's own numbers (metrics.json's, for the same samples)
    from genreview.evaluation.classifier import load_classifier
    from genreview.evaluation.evaluate import shared_reference
    ev = EvalConfig(**spec["eval"])
    clf_path = tiny_classifier_dir / "classifier.pt"
    test = D.load("fashion_mnist", fmnist_root, "test")
    direct = shared_reference(None, load_classifier(clf_path), clf_path, ev, spec, test).score(images)
    assert on_disk["judges"]["domain"]["fd"] == pytest.approx(direct["fd"], rel=1e-9)
    assert secs < 30, f"one judge job took {secs:.1f}s"


def test_a_diverged_run_is_recorded_and_an_old_samples_file_refused(judge_build, fmnist_root, tiny_classifier_dir,
                                                                    tmp_path):
    spec = _judge_spec(fmnist_root)
    clf = tiny_classifier_dir / "classifier.pt"
    samples, metrics = _fake_eval(tmp_path, torch.zeros(0, 1, 28, 28, dtype=torch.uint8), status="diverged")
    res = J.judge_run(spec, samples, metrics, clf, judge_build, tmp_path / "out")
    assert res["status"] == "diverged" and res["judges"] == {}
    torch_save({"grid": torch.zeros(4, 1, 28, 28, dtype=torch.uint8)}, samples)
    (tmp_path / "metrics.json").write_text(json.dumps({"status": "ok"}))
    with pytest.raises(ResultsFileError, match="no 'samples'.*snakemake --cores all --forcerun"):
        J.judge_run(spec, samples, metrics, clf, judge_build, tmp_path / "out")


def test_a_wrong_judge_file_is_refused_with_its_rebuild_command(judge_build, fmnist_root, tiny_classifier_dir,
                                                                train_split, tmp_path):
    clf = tiny_classifier_dir / "classifier.pt"
    with pytest.raises(ResultsFileError, match=r"no judge.*not the 'resnet' judge.*snakemake .*train_judges"):
        J.load_judge(clf, "resnet")
    with pytest.raises(ResultsFileError, match=r"the judge 'autoencoder'.*not the 'resnet' judge"):
        J.load_judge(judge_build / "autoencoder.pt", "resnet")
    # a judge retrained (other weights) while its reference features stayed: refused like the reference rule's file
    stale = tmp_path / "judges"
    shutil.copytree(judge_build, stale)
    net = J.load_judge(stale / "resnet.pt", "resnet")
    ck = torch.load(stale / "resnet.pt", weights_only=False)
    ck["state_dict"] = {k: v + 1 if v.is_floating_point() else v for k, v in net.state_dict().items()}
    torch_save(ck, stale / "resnet.pt")
    samples, metrics = _fake_eval(tmp_path, train_split.images[:50])
    with pytest.raises(ResultsFileError, match=r"another classifier.*rebuild it with `snakemake.*`train_judges` rule"):
        J.judge_run(_judge_spec(fmnist_root), samples, metrics, clf, stale, tmp_path / "out")


def test_the_judges_section_is_validated():
    settings = C.load_schema()["$defs"]["settings"]["properties"]
    assert set(settings["judges"]["properties"]) == {f.name for f in dataclasses.fields(J.JudgesConfig)}
    raw = load_raw_config()
    raw["profile"] = "smoke"
    cfg = C.resolve(raw)
    assert C.judges_config(cfg)["max_steps"] > 0, "the smoke profile must cap the judges' training"
    raw["judges"]["bogus"] = 1
    with pytest.raises(C.ConfigError, match="unknown key 'judges.bogus'"):
        C.resolve(raw)
    del raw["judges"]["bogus"]
    raw["judges"]["judges"] = ["domain", "inception"]
    with pytest.raises(C.ConfigError, match="judges.judges"):
        C.resolve(raw)
    raw["judges"]["judges"] = ["domain"]
    raw["profiles"]["smoke"]["judges"]["epochs"] = 0
    with pytest.raises(C.ConfigError, match="judges.epochs"):
        C.resolve(raw)


def test_the_commands_and_specs():
    from genreview.__main__ import COMMANDS, PER_RUN
    assert {"train-judges", "judge"} <= set(COMMANDS) and "judge" in PER_RUN
    cfg = smoke_config()
    assert set(C.judges_spec(cfg)) >= {"judges", "eval", "dataset"}
    spec = C.judge_spec(cfg, "ddpm", 2)
    assert spec["model"] == "ddpm" and spec["seed"] == 2 and spec["eval"]["inception_weights"] is None
    assert "cyclegan" not in C.judge_models(cfg) and "ddpm" in C.judge_models(cfg)
    every = {**cfg, "judges": {}}
    assert "cyclegan" not in C.judge_models(every) and {"gmm", "ddpm", "dcgan"} <= set(C.judge_models(every))
    assert "models" not in C.judges_spec(cfg)["judges"], "which runs are judged must not retrain the judges"
    with pytest.raises(C.ConfigError, match="judges.models lists cyclegan"):
        C.judge_models({**cfg, "models": [*cfg["models"]], "judges": {"models": ["cyclegan"]}})
