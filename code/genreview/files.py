"""Atomic writes, and the loaders of every results and model file (JSON, JSONL, `.pt`, `.npz`): a file that is
missing or cannot be decoded raises ResultsFileError, naming the file, what is wrong with it and the command
that rebuilds it. No heavy imports at module level (the paper steps use only JSON); torch and numpy are
imported by the loaders that need them."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside `path`; move it into place only on success.

    A job killed half-way leaves a stray temporary file, never a truncated output
    that a later rule would take as complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 is too strict for outputs
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_json(obj, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


class ResultsFileError(Exception):
    """A results or model file that is missing or cannot be decoded; the message says how to rebuild it."""


def rebuild_command(path: str | os.PathLike, remove: str | os.PathLike | None = None) -> str:
    """The command that rebuilds `path`, an output of a rule: `--forcerun` of that file (its job and every job
    downstream rerun), with the --config of the build it belongs to when it lies under results/<tag>/.
    remove: a folder of intermediate files to delete first (a job reuses what it finds there)."""
    path = Path(path)
    if path.is_absolute() and path.is_relative_to(Path.cwd()):
        path = path.relative_to(Path.cwd())
    cmd = (f"rm -r {remove} && " if remove else "") + f"snakemake --cores all --forcerun {path}"
    parts = path.parts
    if "results" in parts[:-2]:
        profile, _, dataset = parts[parts.index("results") + 1].partition("-")
        cmd += f" --config profile={profile}" + (f" dataset={dataset}" if dataset else "")
    return cmd


def _unreadable(path, what: str, err: Exception | None, rebuild: str | None) -> ResultsFileError:
    detail = f" ({type(err).__name__}: {err})" if err is not None else ""
    return ResultsFileError(f"{path} {what}{detail}. Rebuild it: {rebuild or rebuild_command(path)}")


def _read(path, loader, what: str, rebuild: str | None):
    """loader(path), with a missing file or a decode error turned into ResultsFileError."""
    if not Path(path).is_file():
        raise _unreadable(path, "does not exist", None, rebuild)
    try:
        return loader(path)
    except Exception as e:  # each format fails in its own types (JSONDecodeError, RuntimeError, BadZipFile...)
        raise _unreadable(path, f"is not {what}", e, rebuild) from e


def load_json(path: str | os.PathLike, rebuild: str | None = None):
    """The JSON file `path`. rebuild: the command that rebuilds it, if not --forcerun of the file itself."""
    return _read(path, lambda p: json.loads(Path(p).read_text()), "valid JSON (cut short or edited?)", rebuild)


def load_jsonl(path: str | os.PathLike, rebuild: str | None = None) -> list:
    """The rows of the JSON-lines file `path` (blank lines skipped)."""
    def rows(p):
        out = []
        for i, line in enumerate(Path(p).read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except ValueError as e:
                raise ValueError(f"line {i}: {e}") from e
        return out
    return _read(path, rows, "valid JSON lines (cut short or edited?)", rebuild)


def load_torch(path: str | os.PathLike, map_location="cpu", rebuild: str | None = None, mmap: bool = False):
    """torch.load of a file this package saved (pickled dicts, so weights_only=False). mmap: map the tensors'
    storages rather than reading them (opens the archive and unpickles its index: a cheap integrity check)."""
    import torch

    return _read(path, lambda p: torch.load(p, map_location=map_location, weights_only=False, mmap=mmap),
                 "a readable PyTorch file (truncated or overwritten?)", rebuild)


def load_npz(path: str | os.PathLike, rebuild: str | None = None) -> dict:
    """Every array of the .npz file `path`, read into memory."""
    import numpy as np

    def arrays(p):
        with np.load(p) as f:
            return {k: f[k] for k in f.files}
    return _read(path, arrays, "a readable .npz archive (truncated or overwritten?)", rebuild)


def load_cache(path: str | os.PathLike) -> dict | None:
    """A JSON file a job keeps to resume from or to reuse (not a rule's output): its content, or None when it is
    missing or unreadable. An unreadable one is set aside with a warning, and the job computes it again."""
    if not Path(path).exists():
        return None
    try:
        return load_json(path)
    except ResultsFileError:
        import logging
        logging.getLogger("genreview").warning("%s is unreadable: set aside as %s, computing it again", path,
                                               set_aside(path))
        return None


def set_aside(path: str | os.PathLike) -> Path:
    """Rename a corrupt file to <name>.corrupt (replacing an older one), so that nothing reads it again and it
    is still there to inspect. Returns the new path."""
    path = Path(path)
    aside = path.with_name(path.name + ".corrupt")
    os.replace(path, aside)
    return aside


LOADERS = {".json": load_json, ".jsonl": load_jsonl, ".npz": load_npz,
           ".pt": lambda p: load_torch(p, mmap=True)}


def check_files(paths: list[str], out: str | os.PathLike) -> dict:
    """Load every file in `paths` by its suffix (JSON, JSON lines, .pt, .npz); any other file must exist. Raises
    ResultsFileError naming every missing or unreadable one with its rebuild command; otherwise writes `out`
    (the files checked and their sizes) for the pipeline's final target."""
    bad = []
    for p in paths:
        try:
            LOADERS.get(Path(p).suffix, lambda q: _read(q, os.stat, "readable", None))(p)
        except ResultsFileError as e:
            bad.append(str(e))
    if bad:
        raise ResultsFileError(f"{len(bad)} of {len(paths)} results files cannot be read:\n" + "\n".join(bad))
    record = {"n": len(paths), "bytes": {p: os.path.getsize(p) for p in sorted(paths)}}
    save_json(record, out)
    return record


def _json_default(o):
    if hasattr(o, "item") and getattr(o, "ndim", 0) == 0:  # numpy and torch scalars
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


@contextlib.contextmanager
def file_lock(path: str | Path):
    """Hold an exclusive lock on `path` + ".lock" (fcntl, released when the block ends or the process dies):
    jobs started side by side that read or write the same file take turns."""
    import fcntl

    lock = Path(f"{path}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
