"""Config dataclass fields that carry their own bounds, so that each config key is declared once.

A config dataclass declares a field with `hp`, its default and the values config.yaml may give it:

    @dataclass
    class VAEConfig:
        latent_dim: int = hp(16, minimum=1)
        lr: float = hp(2e-4, exclusive_minimum=0)
        beta: float = hp(1.0, minimum=0, doc="weight of the KL term")

`properties(cls)` turns the fields into JSON-schema properties: the type from the annotation (int, float, bool,
str, list[...], dict, `X | None`), the bounds from the field's metadata. A subclass that only changes a default
writes it plainly (`lr_g: float = 5e-5`) and keeps the bounds its base class declared. `genreview.config_schema`
assembles them into the schema that config.yaml is validated against. This module imports nothing of the package.

Upper bounds. A size that sets how long a job runs has a `maximum`, so that a slip of the keyboard
(`eval.n_samples: 10000000000`) is an error naming the key and the bound instead of a job that never ends.
The bounds sit a hundred times or more above the full profile (one GPU, paper quality), out of any
reasonable run's way:

    images drawn, scored or fitted (n_samples, n, nll_images, train_images, probe_train, grids)  10**6
    epochs                                                                                      10**4
    gradient steps (max_steps, a short run's steps, inversion steps)                            10**8
    EM iterations (max_iter, n_iter)                                                            10**4
    diffusion timesteps and sampler steps (timesteps, sample_steps, vlb_timesteps, sweep steps)  10**5
    snapshots, random draws, a study's seeds (how many)                                         10**3
    a seed's value                                                    2**32 - 1 (NumPy's largest seed)

Widths, batch sizes and learning rates have none: a value too large for the machine fails at once, with
the out-of-memory error or the divergence the run records.
"""
from __future__ import annotations

import copy
import dataclasses
import re

MODEL_NAME = {"$ref": "#/$defs/model_name"}  # the schema of one model's name: hp([...], items=MODEL_NAME)

_TYPES = {"int": "integer", "float": "number", "bool": "boolean", "str": "string", "list": "array",
          "dict": "object", "None": "null"}


def hp(default=dataclasses.MISSING, *, minimum=None, exclusive_minimum=None, maximum=None, exclusive_maximum=None,
       enum=None, items=None, min_items=None, unique_items=None, doc=None, schema=None):
    """A dataclass field with `default` (a list or dict default is copied for every instance) whose metadata
    holds its JSON-schema keywords: minimum, exclusive_minimum, maximum, exclusive_maximum, enum (the allowed
    values; then no type is added), items (the schema of a list's items, merged with the item type from
    the annotation), min_items, unique_items, doc (the description) and schema (any other keywords, verbatim)."""
    given = {"minimum": minimum, "exclusiveMinimum": exclusive_minimum, "maximum": maximum,
             "exclusiveMaximum": exclusive_maximum, "enum": enum, "minItems": min_items,
             "uniqueItems": unique_items, "items": items, "description": doc}
    meta = {"schema": {**{k: v for k, v in given.items() if v is not None}, **(schema or {})}}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _json_type(annotation: str, where: str):
    """'int' -> 'integer', 'str | None' -> ['string', 'null'], 'list[int]' -> ('array', 'integer')."""
    names = [a.strip() for a in annotation.split("|")]
    out = []
    for name in names:
        base = re.sub(r"\[.*\]$", "", name)
        if base not in _TYPES:
            raise TypeError(f"{where}: annotation {annotation!r} has no JSON-schema type; use one of "
                            f"{', '.join(_TYPES)} (or give the field's schema in full with hp(schema=...))")
        out.append(_TYPES[base])
    return out[0] if len(out) == 1 else out


def _annotation(f: dataclasses.Field) -> str:
    return f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))


def _declared(cls: type, name: str) -> dict:
    """The schema keywords of field `name`: from `cls`, or else from the nearest base class that declares them
    (a variant that only changes a default, `lr_g: float = 5e-5`, keeps its base's bounds)."""
    for klass in cls.__mro__:
        f = getattr(klass, "__dataclass_fields__", {}).get(name)
        if f is not None and "schema" in f.metadata:
            return copy.deepcopy(dict(f.metadata["schema"]))
    return {}


def field_schema(cls: type, f: dataclasses.Field) -> dict:
    """The JSON schema of one field of config dataclass `cls`."""
    meta = _declared(cls, f.name)
    annotation = _annotation(f)
    where = f"{cls.__name__}.{f.name}"
    node = {} if ("enum" in meta or "$ref" in meta) else {"type": _json_type(annotation, where)}
    inner = re.fullmatch(r"list\[(.+)\]", annotation.strip())
    if inner:
        items = meta.pop("items", {})
        typed = {} if ("enum" in items or "$ref" in items) else {"type": _json_type(inner.group(1), where)}
        meta = {**meta, "items": {**typed, **items}}
    return {**node, **meta}


def properties(cls: type) -> dict:
    """name -> JSON schema, for every field of config dataclass `cls`, in declaration order."""
    return {f.name: field_schema(cls, f) for f in dataclasses.fields(cls)}
