"""The JSON schema of config.yaml, assembled from the config dataclasses so that each key is declared once.

schemas/config.schema.yaml holds the structure that no dataclass declares (profiles, the top-level keys, the
data and paper blocks, a section's description). `build` completes it: the model names from the registry,
TrainConfig's fields as `train_fields`, one definition per model under `hparams` (TrainConfig's fields and the
model's config dataclass' fields, nothing else), and each section's keys from its dataclass. A field's type
comes from its annotation and its bounds from `genreview.hparams.hp`.
"""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from .files import atomic_path
from .hparams import properties
from .models import REGISTRY
from .training.config import TrainConfig

SKELETON_PATH = Path(__file__).parent / "schemas" / "config.schema.yaml"


def build(sections: dict[str, type]) -> dict:
    """The full schema. sections: settings key (e.g. `eval`) -> the config dataclass whose fields it holds;
    keys a section's skeleton lists under `properties` (probe.models) are kept beside the fields."""
    schema = yaml.safe_load(SKELETON_PATH.read_text())
    defs = schema["$defs"]
    settings = defs["settings"]["properties"]
    defs["model_name"] = {"enum": list(REGISTRY)}
    defs["train_fields"] = {"type": "object", "properties": properties(TrainConfig)}
    for key, cls in sections.items():
        node = settings.setdefault(key, {})
        node.update(type="object", additionalProperties=False,
                    properties={**node.get("properties", {}), **properties(cls)})
    hparams = {}
    for name, (_, cfg_cls) in REGISTRY.items():
        defs[f"hparams_{name}"] = {"type": "object", "$ref": "#/$defs/train_fields", "unevaluatedProperties": False,
                                   "properties": properties(cfg_cls)}
        hparams[name] = {"$ref": f"#/$defs/hparams_{name}"}
    settings["hparams"] = {"type": "object", "additionalProperties": False, "properties": hparams}
    return schema


def write(schema: dict, path: str | Path) -> str:
    """Write `schema` as JSON (for Snakemake's `validate`, which reads a schema from a file); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:  # a concurrent snakemake never reads a half-written schema
        tmp.write_text(json.dumps(schema, indent=1))
    return str(path.resolve())
