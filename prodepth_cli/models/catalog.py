"""The catalog of public depth models: what `prodepth models pull NAME` fetches and how to run it.

The table itself is data (`catalog.json` beside this module): for each model its source (a
Hugging Face repo pinned to a commit, or a release URL), its files with bytes and sha256, its
licence, and the full spec its file is run with whatever the file is called. `$PRODEPTH_CATALOG`
names a JSON file of the same shape whose entries are added (or replace ours): a studio's own
models, or the tests' stand-ins.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prodepth_cli.errors import ModelError

CATALOG_FILE = Path(__file__).with_name("catalog.json")
CATALOG_ENV = "PRODEPTH_CATALOG"
VARIANT_SEP = ":"


@dataclass(frozen=True)
class ModelFile:
    """One file of a model: `path` in the repo (or under the release URL), its size and
    sha256. Where no public source gave them, they are None and the download is checked
    against the sha256 the hub itself reports for the file at the pinned commit."""

    path: str
    bytes: int | None
    sha256: str | None


@dataclass(frozen=True)
class CatalogModel:
    """One variant of one catalog model. The first of `files` is the ONNX graph; the others
    (external weights) must sit beside it under their own names."""

    name: str
    variant: str
    default_variant: str
    title: str
    licence: str
    files: tuple[ModelFile, ...]
    spec: dict[str, Any]
    repo: str | None = None  # Hugging Face repo id, with `revision` a commit sha
    revision: str | None = None
    url: str | None = None  # or a release folder: each file is `url` + its path
    notes: str = ""
    about_bytes: int | None = None  # the download's approximate size, where `bytes` are unknown
    default_rank: int | None = None  # once installed, a plain run's default: lowest rank first

    @property
    def ref(self) -> str:
        """How `--model` names this variant: `name`, or `name:variant` for the others."""
        if self.variant == self.default_variant:
            return self.name
        return f"{self.name}{VARIANT_SEP}{self.variant}"

    @property
    def bytes(self) -> int:
        """Download size: exact when every file's is known, else approximate."""
        if any(f.bytes is None for f in self.files):
            return self.about_bytes or 0
        return sum(f.bytes for f in self.files)

    @property
    def kind(self) -> str:
        """relative (affine-invariant inverse depth) or metric (depth in metres)."""
        return "metric" if self.spec.get("units") == "m" else "relative"

    def file_url(self, file: ModelFile, endpoint: str) -> str:
        """Where `file` is downloaded from (`endpoint`: the Hugging Face hub's address)."""
        if self.url is not None:
            return self.url.rstrip("/") + "/" + file.path
        return f"{endpoint.rstrip('/')}/{self.repo}/resolve/{self.revision}/{file.path}"


def catalog() -> dict[str, dict[str, CatalogModel]]:
    """Every model by name, then by variant: the shipped table plus `$PRODEPTH_CATALOG`."""
    return _load(os.environ.get(CATALOG_ENV, ""))


def all_models() -> list[CatalogModel]:
    """Every variant of every model, in catalog order."""
    return [m for variants in catalog().values() for m in variants.values()]


def default_candidates() -> list[CatalogModel]:
    """The variants that may be a plain run's default once installed, best first: by the
    catalog's `default_rank` (relative-depth models only; a model without one never is),
    each model's own default variant before its others."""
    ranked = [m for m in all_models() if m.default_rank is not None and m.kind == "relative"]
    return sorted(ranked, key=lambda m: (m.default_rank, m.variant != m.default_variant))


def find(ref: str) -> CatalogModel | None:
    """The catalog variant `ref` names (`name` or `name:variant`), or None when `name` is
    not in the catalog. An unknown variant of a known model is an error."""
    name, _, variant = ref.partition(VARIANT_SEP)
    variants = catalog().get(name)
    if variants is None:
        return None
    if not variant:
        return next(m for m in variants.values() if m.variant == m.default_variant)
    if variant not in variants:
        raise ModelError(f"{name}: no variant {variant!r} (choose {', '.join(variants)})")
    return variants[variant]


def lookup(ref: str) -> CatalogModel:
    """Like `find`, but a name the catalog does not have is an error."""
    model = find(ref)
    if model is None:
        known = ", ".join(catalog())
        raise ModelError(f"{ref}: not in the model catalog (known: {known})")
    return model


def match_file(path: Path) -> CatalogModel | None:
    """The catalog variant whose graph `path` is (same size and sha256), whatever its name:
    so a pulled file that was moved or renamed is still run with its catalog spec."""
    try:
        size = path.stat().st_size
    except OSError:
        return None
    candidates = [m for m in all_models() if m.files[0].bytes == size and m.files[0].sha256]
    if not candidates:
        return None
    digest = sha256_of(path)
    return next((m for m in candidates if m.files[0].sha256 == digest), None)


def human_bytes(n: int) -> str:
    """A download's size as people read it: 99 MB, 3.8 GB."""
    return f"{n / 1e6:,.0f} MB" if n < 1e9 else f"{n / 1e9:.1f} GB"


def sha256_of(path: Path, chunk: int = 8 << 20) -> str:
    """Hex sha256 of a file, read in chunks of a few MB."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@functools.lru_cache(maxsize=4)
def _load(extra: str) -> dict[str, dict[str, CatalogModel]]:
    table = _parse(CATALOG_FILE)
    if extra:
        table.update(_parse(Path(extra)))
    return table


def _parse(path: Path) -> dict[str, dict[str, CatalogModel]]:
    try:
        raw = json.loads(path.read_text())
        return {name: _variants(name, entry) for name, entry in raw.items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{path}: not a valid model catalog ({exc!r})") from None


def _variants(name: str, entry: dict[str, Any]) -> dict[str, CatalogModel]:
    """One catalog entry -> its variants; a variant's own fields win over the entry's."""
    default = entry["default_variant"]
    out = {}
    for variant, fields in entry["variants"].items():
        merged = {**entry, **fields, "spec": {**entry.get("spec", {}), **fields.get("spec", {})}}
        model = CatalogModel(
            name=name,
            variant=variant,
            default_variant=default,
            title=merged["title"],
            licence=merged["licence"],
            files=tuple(ModelFile(f["path"], f["bytes"], f["sha256"]) for f in merged["files"]),
            spec=merged["spec"],
            repo=merged.get("repo"),
            revision=merged.get("revision"),
            url=merged.get("url"),
            notes=merged.get("notes", ""),
            about_bytes=merged.get("about_bytes"),
            default_rank=merged.get("default_rank"),
        )
        if (model.url is None) == (model.repo is None or model.revision is None):
            raise KeyError(f"{name}: give either repo and revision, or url")
        if model.url is not None and any(f.sha256 is None for f in model.files):
            raise KeyError(f"{name}: a release file needs its sha256 (no hub reports one)")
        out[variant] = model
    if default not in out:
        raise KeyError(f"{name}: default_variant {default!r} is not a variant")
    return out
