"""The provenance record: Snakemake's benchmark files read and summed per rule, and a config hash that is
stable under key order and machine-local paths but changes with the experiment."""
from __future__ import annotations

import json

import pytest

from genreview import config as C
from genreview import provenance as prov
from genreview.__main__ import main

from conftest import CONFIG_YAML, load_raw_config

HEAD = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _bench(path, *rows: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEAD + "".join(r + "\n" for r in rows))
    return path


@pytest.fixture
def benchmarks(tmp_path):
    """A benchmarks/<profile> folder shaped like Snakemake's: two train jobs (one benchmarked twice, as with
    --benchmark-repeats 2), a summarize job too short for a memory reading (NA), and the presentation rule
    latex, which the record must leave out."""
    d = tmp_path / "benchmarks" / "smoke"
    _bench(d / "train" / "vae_seed0.tsv", "120.0\t0:02:00\t1000.5\t3823.1\t604.4\t804.5\t49.5\t61.5\t169.5\t205.8",
           "122.0\t0:02:02\t1100.0\t3823.1\t604.4\t804.5\t49.5\t61.5\t169.5\t207.8")
    _bench(d / "train" / "dcgan_seed0.tsv", "30.5\t0:00:30\t700.0\t2000.0\t500.0\t600.0\t1.0\t2.0\t90.0\t28.0")
    _bench(d / "summarize.tsv", "4.19\t0:00:04\tNA\tNA\tNA\tNA\tNA\tNA\tNA\tNA")
    _bench(d / "latex.tsv", "9.0\t0:00:09\t70.0\t144.2\t54.3\t58.6\t0.4\t3.1\t4.6\t0.5")
    return d


def test_benchmark_files_are_read_and_summed_per_rule(benchmarks):
    files = prov.benchmark_files(benchmarks)
    assert list(files) == ["train", "summarize"], "only compute rules, in pipeline order; latex is left out"
    costs = prov.rule_costs(files)
    train, summarize = costs["rules"]
    assert train["rule"] == "train" and train["n_jobs"] == 2
    vae = next(j for j in train["jobs"] if j["job"] == "vae_seed0")
    assert vae["wall_s"] == pytest.approx(121.0), "repeats: the mean wall time"
    assert vae["max_rss_mib"] == pytest.approx(1100.0), "repeats: the largest resident set"
    assert vae["cpu_s"] == pytest.approx(206.8)
    assert train["wall_s"] == pytest.approx(151.5) and train["max_job_wall_s"] == pytest.approx(121.0)
    assert train["longest_job"] == "vae_seed0" and train["max_rss_mib"] == pytest.approx(1100.0)
    assert summarize["max_rss_mib"] is None and summarize["wall_s"] == pytest.approx(4.19), "NA is no number"
    total = costs["total"]
    assert total["n_jobs"] == 3 and total["wall_s"] == pytest.approx(155.69)
    assert (total["longest_rule"], total["longest_job"]) == ("train", "vae_seed0")
    assert total["max_rss_mib"] == pytest.approx(1100.0) and costs["missing"] == []


def test_a_missing_benchmark_file_is_listed_not_counted(benchmarks):
    files = {"train": [str(benchmarks / "train" / "vae_seed0.tsv"), str(benchmarks / "train" / "lost.tsv")]}
    costs = prov.rule_costs(files)
    assert costs["total"]["n_jobs"] == 1 and costs["missing"] == [str(benchmarks / "train" / "lost.tsv")]


def test_a_file_that_is_no_benchmark_is_an_error(tmp_path):
    bad = tmp_path / "x.tsv"
    bad.write_text("wall\n12\n")
    with pytest.raises(prov.ProvenanceError, match="not a Snakemake benchmark file"):
        prov.read_benchmark(bad)
    with pytest.raises(prov.ProvenanceError, match="run the pipeline first"):
        prov.benchmark_files(tmp_path / "nothing")


def _cfg(profile="smoke", **over) -> dict:
    raw = load_raw_config()
    raw["profile"] = profile
    raw.update(over)
    return C.resolve(raw)


def test_config_hash_is_stable_and_follows_the_experiment():
    cfg = _cfg()
    h = prov.config_hash(cfg)
    assert len(h) == 64 and int(h, 16) >= 0
    assert prov.config_hash(json.loads(json.dumps(cfg))) == h, "the same config hashes the same"
    assert prov.config_hash(dict(reversed(list(cfg.items())))) == h, "key order does not matter"
    moved = _cfg(data={"root": "/elsewhere/data", "debian_dir": "/opt/fmnist"})
    assert prov.config_hash(moved) == h, "where the data lies on this machine is no part of the experiment"
    assert prov.config_hash(_cfg(seeds=[0, 1])) != h, "another seed list is another experiment"
    assert prov.config_hash(_cfg("small")) != h, "another profile is another experiment"
    changed = json.loads(json.dumps(cfg))
    changed["hparams"]["vae"]["latent_dim"] += 1
    assert prov.config_hash(changed) != h, "a nested hyperparameter changes the hash"


def test_the_record(benchmarks):
    cfg = _cfg()
    record = prov.build(cfg, prov.benchmark_files(benchmarks))
    assert record["profile"] == "smoke" and record["config_sha256"] == prov.config_hash(cfg)
    assert record["config_hash"] == record["config_sha256"][:prov.SHORT_HASH]
    hw = record["hardware"]
    assert isinstance(hw["cores"], int) and hw["cores"] >= 1 and hw["cpu"]
    assert hw["ram_gib"] is None or hw["ram_gib"] > 0
    assert hw["gpu"] == "none" or hw["gpu_memory_gib"] > 0
    assert set(prov.PACKAGES) == set(record["packages"]) and record["packages"]["jinja2"]
    assert record["python"] and record["os"] and isinstance(record["dirty"], bool)
    assert [r["rule"] for r in record["rules"]] == ["train", "summarize"]


def test_the_command_line_writes_the_record(benchmarks, tmp_path):
    out = tmp_path / "results" / "provenance.json"
    assert main(["provenance", "--config", str(CONFIG_YAML), "--profile", "smoke",
                 "--benchmark-dir", str(benchmarks), "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["profile"] == "smoke" and record["total"]["n_jobs"] == 3
    assert record["config_sha256"] == prov.config_hash(_cfg())


# --------------------------------------------------------------------------- where each job ran

def _ran_on(host: str, gpu: str = "none", torch: str = "2.4.0") -> dict:
    return {"host": host, "cpu": f"CPU of {host.rstrip('0123456789')}", "cores_available": 8, "gpu": gpu,
            "gpu_memory_gib": 80.0 if gpu != "none" else None, "torch": torch, "threads": 8, "slurm_job_id": "42"}


def _log(path, *records: dict):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("07:01:00 INFO training...\n" + "".join(
        f"07:02:00 INFO {prov.job_hardware_line(r)}\n" for r in records))
    return path


def test_each_step_writes_where_it_ran_to_its_log(tmp_path, monkeypatch, caplog):
    import dataclasses

    from genreview import __main__ as cli

    seen = {}
    monkeypatch.setitem(cli.COMMANDS, "train", dataclasses.replace(
        cli.COMMANDS["train"], run=lambda fn, spec, a: seen.setdefault("spec", spec)))  # the step, without training
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    with caplog.at_level("INFO", logger="genreview"):
        assert main(["train", "--config", str(CONFIG_YAML), "--profile", "smoke", "--model", "gmm", "--threads", "3",
                     "--out", str(tmp_path / "run")]) == 0
    assert seen["spec"]["model"] == "gmm"
    log = tmp_path / "train.log"
    log.write_text(caplog.text)
    hw = prov.read_job_hardware(log)
    assert hw is not None, f"no {prov.JOB_HARDWARE_MARK!r} line in the step's log:\n{caplog.text}"
    assert hw["host"] and hw["cpu"] == prov.cpu_model() and hw["slurm_job_id"] == "4242"
    assert hw["threads"] >= 1 and hw["torch"] and hw["cores_available"] >= 1
    assert hw["gpu"] == "none", "a step that never initialised CUDA used no GPU"
    assert prov.read_job_hardware(tmp_path / "absent.log") is None
    assert prov.read_job_hardware(_log(tmp_path / "old.log")) is None, "a log from before the records: none"


def test_the_record_lists_where_each_job_ran(benchmarks, tmp_path):
    logs_dir = tmp_path / "logs" / "smoke"
    _log(logs_dir / "train" / "vae_seed0.log", _ran_on("gpu07", "NVIDIA H100"))
    _log(logs_dir / "train" / "dcgan_seed0.log", _ran_on("cpu03"), _ran_on("gpu12", "NVIDIA H100"))  # a retry
    files = prov.benchmark_files(benchmarks)
    logs = prov.log_files(files, benchmarks, logs_dir)
    assert logs[str(benchmarks / "train" / "vae_seed0.tsv")] == str(logs_dir / "train" / "vae_seed0.log")
    assert logs[str(benchmarks / "summarize.tsv")] == str(logs_dir / "summarize.log")  # written by no one here

    record = prov.build(_cfg(), files, logs)
    train, summarize = record["rules"]
    jobs = {j["job"]: j for j in train["jobs"]}
    assert jobs["vae_seed0"]["ran_on"]["host"] == "gpu07"
    assert jobs["dcgan_seed0"]["ran_on"]["host"] == "gpu12", "the last attempt's record counts"
    assert train["machines"] == [{"cpu": "CPU of gpu", "gpu": "NVIDIA H100", "gpu_memory_gib": 80.0,
                                  "torch": "2.4.0", "hosts": ["gpu07", "gpu12"], "n_jobs": 2}]
    assert train["n_jobs_unrecorded"] == 0
    assert summarize["machines"] == [] and summarize["n_jobs_unrecorded"] == 1
    assert summarize["jobs"][0]["ran_on"] is None
    assert record["machines"] == [{**train["machines"][0], "rules": {"train": 2}}]
    assert record["hardware"]["cpu"] == prov.cpu_model(), "`hardware` stays the machine that wrote the record"
    assert prov.build(_cfg(), files)["rules"][0]["n_jobs_unrecorded"] == 2, "without logs, nothing is known"


def test_the_command_line_reads_the_logs_beside_the_benchmarks(benchmarks, tmp_path):
    logs_dir = tmp_path / "logs" / "smoke"
    _log(logs_dir / "summarize.log", _ran_on("login1"))
    out = tmp_path / "provenance.json"
    assert main(["provenance", "--config", str(CONFIG_YAML), "--profile", "smoke", "--benchmark-dir", str(benchmarks),
                 "--log-dir", str(logs_dir), "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert [(m["hosts"], m["rules"]) for m in record["machines"]] == [(["login1"], {"summarize": 1})]

    bench = str(benchmarks / "summarize.tsv")
    assert main(["provenance", "--config", str(CONFIG_YAML), "--profile", "smoke",
                 "--benchmarks", json.dumps({"summarize": [bench]}),
                 "--logs", json.dumps({bench: str(logs_dir / "summarize.log")}), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["rules"][0]["jobs"][0]["ran_on"]["host"] == "login1"
