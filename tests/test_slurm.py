"""The workflow on a SLURM cluster (profiles/slurm, snakemake-executor-plugin-slurm): every compute job carries
the size that `ClusterConfig` (overridden by config.yaml's `cluster:` section) gives its kind, the network jobs
ask for a GPU, the light jobs stay on the submitting machine, and a local run is held back by none of it.

No SLURM is needed: the dry runs plan without it, and one run submits through the plugin to a fake `sbatch` on
PATH that records its arguments and refuses the job (fake sinfo, squeue, sacct, ... answer nothing), which
shows the exact sbatch call of every job that became ready.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import stat
import subprocess
from pathlib import Path

import pytest

from genreview import config as C
from genreview.models import REGISTRY
from genreview.provenance import config_hash

from conftest import DEBIAN_DIR, copy_workflow, load_raw_config, snakemake_cmd, snakemake_env

PROFILE = "profiles/slurm"
CHAIN_RULES = {"train", "evaluate", "sweep", "guidance", "probe", "curve", "judge"}  # one group job per model and seed
CLASSICAL = {m for m, (cls, _) in REGISTRY.items() if cls.classical}
NETWORK_RULES = {"train_classifier", "train", "evaluate", "sweep", "guidance", "probe", "curve", "dynamics",
                 "reproduce", "train_judges", "judge"}
LIGHT_RULES = {"prepare_data", "summarize", "claims", "figures", "tables", "render", "latex", "provenance", "arxiv"}
KIND = {"train_classifier": "classifier", "train": "train", "evaluate": "sample", "sweep": "sample",
        "guidance": "sample", "probe": "sample", "curve": "sample", "dynamics": "dynamics",
        "reproduce": "reproduce", "reference": "reference", "train_judges": "classifier", "judge": "sample"}
SLURM_ENV = ("SBATCH_ACCOUNT", "SBATCH_PARTITION", "GENREVIEW_GPU_PARTITION", "GENREVIEW_GPU_MODEL")
FAKE_SLURM = ("sinfo", "squeue", "sacct", "sacctmgr", "sshare", "scontrol", "scancel")


# --------------------------------------------------------------------------- helpers

def _config(data_root: Path, **cluster) -> dict:
    raw = load_raw_config()
    raw["data"] = {"root": str(data_root), "debian_dir": str(DEBIAN_DIR)}
    for key, value in cluster.items():
        raw.setdefault("cluster", {})[key] = value
    return raw


def _env(**extra: str) -> dict:
    env = snakemake_env()
    for key in [*SLURM_ENV, *[k for k in env if k.startswith("SLURM_")]]:
        env.pop(key, None)  # neither the tester's cluster settings nor an enclosing SLURM job
    env.update(extra)
    return env


def _run(workdir: Path, *args: str, env: dict | None = None, timeout: int = 240) -> subprocess.CompletedProcess:
    # Flags before --config: it takes every word after it.
    cmd = snakemake_cmd(*args, "--config", "profile=smoke")
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout, env=env or _env())


def _plan(output: str) -> list[dict]:
    """Every job a dry run lists: its rule, resources (`resources: tmpdir=/tmp, mem_mb=16000, gpu=1, ...`),
    wildcards, outputs, shell command (with -p) and group: the id of the `Group job <id> (...)` block it is listed
    in (indented under it), or None."""
    jobs, group = [], None
    parts = re.split(r"^( *)\[[^\]\n]+\]", output, flags=re.M)
    for indent, block in zip(parts[1::2], parts[2::2]):
        header = re.match(r" Group job (\S+) ", block)
        if header:
            group = header.group(1)
            continue
        m = re.match(r"\s*(?:local)?rule (\w+):", block)
        if not m:
            continue

        def field(name, block=block):
            found = re.search(rf"^\s+{name}: (.*)$", block, flags=re.M)
            return found.group(1) if found else ""

        pairs = [p.split("=", 1) for p in field("resources").split(", ") if "=" in p]
        shell = re.search(r"^\s*Shell command: (.*)$", block, flags=re.M)
        jobs.append({"rule": m.group(1), "resources": {k: v for k, v in pairs},
                     "wildcards": dict(p.split("=", 1) for p in field("wildcards").split(", ") if "=" in p),
                     "output": [f for f in field("output").split(", ") if f], "shell": shell and shell.group(1),
                     "group": group if indent else None})
    return jobs


def _jobs(output: str) -> list[tuple[str, dict]]:
    """(rule, resources) of every job a dry run lists."""
    return [(j["rule"], j["resources"]) for j in _plan(output)]


def _dry_plan(workdir: Path, *args: str) -> list[dict]:
    r = _run(workdir, "-n", "--profile", PROFILE, *args)
    assert r.returncode == 0, f"the SLURM profile's dry run failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    jobs = _plan(r.stdout + r.stderr)
    assert {j["rule"] for j in jobs} >= {"train", "evaluate", "train_classifier", "render", "latex"}, \
        f"the dry run's job listing did not parse:\n{r.stdout[-3000:]}"
    return jobs


def _dry_run(workdir: Path) -> list[tuple[str, dict]]:
    return [(j["rule"], j["resources"]) for j in _dry_plan(workdir)]


def _private_data_root(fmnist_root: Path, tmp_path: Path) -> Path:
    """A data root of this test's own (prepare_data writes its manifest there), sharing the unpacked files."""
    root = tmp_path / "data"
    root.mkdir()
    for entry in fmnist_root.iterdir():
        if entry.is_dir():
            (root / entry.name).symlink_to(entry, target_is_directory=True)
    return root


# --------------------------------------------------------------------------- the config section

def test_the_plugin_is_installed():
    from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry

    plugin = ExecutorPluginRegistry().get_plugin("slurm")
    assert not plugin.common_settings.local_exec


def test_cluster_section_schema_defaults_and_merge():
    schema = C.load_schema()
    cluster = schema["$defs"]["settings"]["properties"]["cluster"]
    assert set(cluster["properties"]) == {f.name for f in dataclasses.fields(C.ClusterConfig)}
    kinds = schema["$defs"]["per_job_kind"]["propertyNames"]["enum"]
    assert kinds == list(C.JOB_KINDS) and set(C.GPU_KINDS) <= set(kinds)
    defaults = dataclasses.asdict(C.ClusterConfig())
    for key in ("threads", "mem_mb", "runtime"):
        assert set(defaults[key]) == set(C.JOB_KINDS), f"ClusterConfig.{key} lacks a kind"
    given = load_raw_config().get("cluster") or {}  # ClusterConfig declares the defaults; config.yaml only overrides
    for key, value in given.items():
        same = ([k for k, v in value.items() if defaults[key].get(k) == v] if isinstance(value, dict) else
                ([key] if defaults[key] == value else []))
        assert not same, f"config.yaml's cluster.{key} restates ClusterConfig's default for {same}: leave it out"
    assert set(KIND.values()) == set(C.JOB_KINDS) and set(KIND) == NETWORK_RULES | {"reference"}

    raw = load_raw_config()
    raw["profile"] = "full"
    raw["cluster"] = {"mem_mb": {"train": 12345}}
    raw["profiles"]["full"]["cluster"] = {"runtime": {"sample": 77}}
    C.resolve(raw)
    got = C.cluster_config(raw)
    assert got["mem_mb"]["train"] == 12345 and got["runtime"]["sample"] == 77
    assert got["mem_mb"]["sample"] == defaults["mem_mb"]["sample"], "a partial mapping must keep the other kinds"

    raw["cluster"] = {"mem_mb": {"trian": 1}}
    with pytest.raises(C.ConfigError, match="trian"):
        C.resolve(raw)
    raw["cluster"] = {"runtime": {"train": 0}}
    with pytest.raises(C.ConfigError, match="cluster.runtime.train"):
        C.resolve(raw)


def test_cluster_sizes_change_no_spec_and_not_the_config_hash():
    raw = load_raw_config()
    raw["profile"] = "smoke"
    before = C.resolve(raw)
    raw["cluster"] = {"gpu": False, "mem_mb": {"train": 99999}}
    after = C.resolve(raw)
    assert "cluster" not in after
    assert config_hash(before) == config_hash(after)
    assert C.train_spec(before, "vae", 0) == C.train_spec(after, "vae", 0)


# --------------------------------------------------------------------------- planned jobs

def test_dry_run_plans_the_declared_resources(fmnist_root, tmp_path):
    raw = _config(fmnist_root)
    workdir = copy_workflow(tmp_path / "wf", raw)
    cluster = C.cluster_config(raw)
    plan = _dry_plan(workdir)
    jobs = [(j["rule"], j["resources"]) for j in plan]
    trained = {rule for rule, _ in jobs}
    for job in plan:
        rule, res = job["rule"], job["resources"]
        if rule in KIND:
            kind = KIND[rule]
            assert res.get("mem_mb") == str(cluster["mem_mb"][kind]), f"{rule}: {res}"
            assert res.get("runtime") == str(cluster["runtime"][kind]), f"{rule}: {res}"
            want = "1" if rule in NETWORK_RULES else None
            if rule in NETWORK_RULES and job["wildcards"].get("model") in CLASSICAL:  # fitted by EM on the CPU
                want = "0"
            assert res.get("gpu") == want, f"{rule}: {res}"
        else:
            assert "gpu" not in res and "runtime" not in res, f"light rule {rule} asks for {res}"
        assert "slurm_account" not in res and "slurm_partition" not in res, \
            f"with SBATCH_ACCOUNT/SBATCH_PARTITION unset the plugin's defaults apply: {rule}: {res}"
    assert sum(rule == "train" for rule, _ in jobs) == len(REGISTRY)
    assert sum(rule == "train" and res.get("gpu") == "0" for rule, res in jobs) == len(CLASSICAL), \
        "only the classical models' train jobs ask for no GPU"
    assert {j["rule"] for j in plan if j["wildcards"].get("model") in CLASSICAL} >= {"train", "evaluate"}
    assert {"dynamics", "curve", "sweep", "probe", "guidance", "reference"} <= trained


def test_changing_the_cluster_section_changes_the_plan(fmnist_root, tmp_path):
    raw = _config(fmnist_root, mem_mb={"train": 12345}, runtime={"train": 77})
    raw["profiles"]["smoke"]["cluster"] = {"mem_mb": {"sample": 2345}}
    raw["device"] = "cpu"  # no CUDA: no GPU asked for
    workdir = copy_workflow(tmp_path / "wf", raw)
    jobs = _dry_run(workdir)
    train = [res for rule, res in jobs if rule == "train"]
    assert train and all(r.get("mem_mb") == "12345" and r.get("runtime") == "77" for r in train), train[:2]
    evaluate = [res for rule, res in jobs if rule == "evaluate"]
    assert evaluate and all(r.get("mem_mb") == "2345" for r in evaluate), evaluate[:2]
    assert not [rule for rule, res in jobs if "gpu" in res], "device: cpu must ask for no GPU"


def test_each_model_and_seed_is_one_group_job(fmnist_root, tmp_path):
    """One dry run: the jobs of each model at each seed (train, evaluate and the studies of that run) form one
    group, named for the model and the seed, that holds one chain_slot per member (run one after another); the
    other compute jobs stay on their own; a classical model's chain asks for no GPU; and the provenance step is
    given every compute job's log, where the job writes the machine it ran on."""
    workdir = copy_workflow(tmp_path / "wf", _config(fmnist_root))
    plan = _dry_plan(workdir, "--printshellcmds")
    chains: dict[str, list[dict]] = {}
    for job in plan:
        if job["rule"] in CHAIN_RULES:
            w = job["wildcards"]
            assert job["group"] == f"chain_{w['model']}_seed{w['seed']}", f"{job['rule']} {w}: group {job['group']}"
            assert job["resources"].get("chain_slot") == "1", f"{job['rule']} {w}: {job['resources']}"
            chains.setdefault(job["group"], []).append(job)
        else:
            assert job["group"] is None, f"{job['rule']} {job['wildcards']} is in group {job['group']}"
            assert "chain_slot" not in job["resources"], f"{job['rule']}: {job['resources']}"
    trains = [j for j in plan if j["rule"] == "train"]
    assert len(chains) == len(trains) == len(REGISTRY), sorted(chains)
    for group, members in chains.items():
        rules = sorted(j["rule"] for j in members)
        assert rules.count("train") == 1 and "evaluate" in rules, f"{group}: {rules}"
        model = members[0]["wildcards"]["model"]
        want = "0" if model in CLASSICAL else "1"
        assert {j["resources"].get("gpu") for j in members} == {want}, f"{group}: {[j['resources'] for j in members]}"
    studies = {j["rule"] for members in chains.values() for j in members}
    assert studies == CHAIN_RULES, f"no study of every kind was planned: {sorted(studies)}"

    (provenance,) = [j for j in plan if j["rule"] == "provenance"]
    words = shlex.split(provenance["shell"])
    logs = json.loads(words[words.index("--logs") + 1])
    benchmarks = json.loads(words[words.index("--benchmarks") + 1])
    every = [f for files in benchmarks.values() for f in files]
    assert set(logs) == set(every), "a compute job's log is not given to the provenance step"
    for job in plan:
        if job["rule"] in CHAIN_RULES | {"train_classifier", "reference", "dynamics", "train_judges"}:
            stem = "_seed".join(job["wildcards"].values()) if "seed" in job["wildcards"] else \
                "".join(job["wildcards"].values())
            name = f"{job['rule']}/{stem}" if stem else job["rule"]
            bench = next(f for f in every if f.endswith(f"/{name}.tsv"))
            assert logs[bench].endswith(f"logs/smoke/{name}.log"), (bench, logs[bench])


# --------------------------------------------------------------------------- submission, and a local run

def _fake_slurm(bindir: Path) -> Path:
    bindir.mkdir()
    scripts = {"sbatch": '#!/bin/sh\nprintf \'%s\\n\' "$*" >> "$FAKE_SBATCH_LOG"\n'
                         'echo "fake sbatch: no cluster here" >&2\nexit 1\n'}
    scripts.update({name: "#!/bin/sh\nexit 0\n" for name in FAKE_SLURM})
    for name, text in scripts.items():
        (bindir / name).write_text(text)
        (bindir / name).chmod(stat.S_IRWXU)
    return bindir


def test_jobs_are_submitted_with_their_sizes_and_light_rules_stay_local(fmnist_root, tmp_path):
    raw = _config(_private_data_root(fmnist_root, tmp_path))
    cluster = C.cluster_config(raw)
    workdir = copy_workflow(tmp_path / "wf", raw)
    with open(workdir / "Snakefile", "a") as f:  # which rules Snakemake runs here under the SLURM executor
        f.write('\n\nonstart:\n    print("LOCAL RULES:", *sorted(r.name for r in workflow.rules '
                'if workflow.is_local(r)))\n')
    log = tmp_path / "sbatch.log"
    env = _env(PATH=f"{_fake_slurm(tmp_path / 'bin')}{os.pathsep}{os.environ['PATH']}", FAKE_SBATCH_LOG=str(log),
               SBATCH_ACCOUNT="acct1", SBATCH_PARTITION="cpuq", GENREVIEW_GPU_PARTITION="gpuq")
    r = _run(workdir, "--profile", PROFILE, "--retries", "0", "--slurm-init-seconds-before-status-checks", "1",
             env=env)
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "fake sbatch: no cluster here" in out, out[-4000:]
    assert "total number of cores" not in out, "the rules must not need --cores under a cluster executor"

    local = set(re.search(r"^LOCAL RULES: (.*)$", out, flags=re.M).group(1).split())
    assert LIGHT_RULES <= local and not local & set(KIND), f"local rules: {sorted(local)}"
    assert (workdir / raw["data"]["root"] / "fashion_mnist.manifest.json").exists(), \
        "prepare_data (a local rule) should have run here"

    def submitted(log_file: Path) -> dict[str, list[str]]:
        calls: dict[str, list[str]] = {}
        for line in log_file.read_text().splitlines():
            args = line.split(" --wrap")[0]
            name = re.search(r"slurm_logs/((?:rule|group)_[\w.]+?)/", args).group(1)  # a long group's ends in ...
            calls.setdefault(name, []).append(args)
        return calls

    def has(args: str, *flags: str) -> None:
        for flag in flags:
            assert f" {flag} " in f" {args} ", f"no {flag!r} in {args}"

    # Every chain waits for the classifier and the judges, inputs of its studies: only they went out.
    calls = submitted(log)
    assert set(calls) == {"rule_train_classifier", "rule_train_judges"}, f"submitted: {sorted(calls)}"
    kind = KIND["train_classifier"]
    has(calls["rule_train_classifier"][0], f"--mem {cluster['mem_mb'][kind]}", f"-t {cluster['runtime'][kind]}",
        f"--cpus-per-task={cluster['threads'][kind]}", "--gpus=1", "-A acct1", "-p gpuq")

    # With the classifier and the reference done, each model's chain goes out as one job: one GPU (none for a
    # classical model, with one CPU), the most CPUs and memory any member asks for, the sum of their runtimes.
    for job in _dry_plan(workdir):
        if job["rule"] in {"train_classifier", "reference", "train_judges"}:
            for f in job["output"]:
                (workdir / f).parent.mkdir(parents=True, exist_ok=True)
                (workdir / f).write_bytes(b"")
    log2 = tmp_path / "sbatch2.log"
    r = _run(workdir, "--profile", PROFILE, "--retries", "0", "--slurm-init-seconds-before-status-checks", "1",
             env={**env, "FAKE_SBATCH_LOG": str(log2)})
    assert r.returncode != 0 and log2.exists(), (r.stdout + r.stderr)[-4000:]
    calls = submitted(log2)
    chains = {name: args for name, (args,) in calls.items() if name.startswith("group_")}
    assert not {name for name in calls if name.split("_", 1)[1] in CHAIN_RULES}, \
        f"a chain's job went out on its own: {sorted(calls)}"
    assert set(calls) - set(chains) <= {"rule_dynamics"}, f"submitted: {sorted(calls)}"  # the GAN study, alone
    assert len(chains) == len(REGISTRY), sorted(chains)
    # each group's members, from the jobs it runs (its name lists them too, but cut short when they are many)
    members = {re.search(r"slurm_logs/(group_[\w.]+?)/", line).group(1): re.findall(r"'(\w+):model=", line)
               for line in log2.read_text().splitlines() if "slurm_logs/group_" in line}
    for name, args in chains.items():
        model, seed = re.match(r"group_chain_(\w+?)_seed(\d+)_", name).groups()
        kinds = [KIND[rule] for rule in members[name]]
        assert "train" in kinds and len(kinds) >= 2, name
        has(args, f"--mem {max(cluster['mem_mb'][k] for k in kinds)}",
            f"-t {sum(cluster['runtime'][k] for k in kinds)}", "-A acct1")
        if model in CLASSICAL:
            has(args, "--cpus-per-task=1")
            assert "--gpus" not in args, f"a classical model's chain asks for a GPU: {args}"
        else:
            has(args, f"--cpus-per-task={max(cluster['threads'][k] for k in kinds)}", "--gpus=1", "-p gpuq")


def test_a_local_run_is_not_held_back_by_gpu_or_memory(fmnist_root, tmp_path):
    # More memory than any test machine has, and a GPU it may lack: Snakemake constrains a local run only by
    # what --resources gives, so the job runs anyway.
    raw = _config(_private_data_root(fmnist_root, tmp_path), mem_mb={"train": 10**8})
    raw["models"] = ["vae"]
    workdir = copy_workflow(tmp_path / "wf", raw)
    target = "results/smoke/runs/vae/seed0/train_summary.json"
    r = _run(workdir, target, "--cores", "1", env=_env(), timeout=300)
    assert r.returncode == 0, f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    assert "mem_mb=100000000" in r.stdout + r.stderr and "gpu=1" in r.stdout + r.stderr
    assert "Group job" not in r.stdout + r.stderr, "a local run schedules every job on its own"
    assert (workdir / target).exists()
