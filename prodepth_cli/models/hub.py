"""Downloading catalog models: pull, find installed, remove.

Hugging Face files go through huggingface_hub (its cache under `HF_HOME`, `HF_TOKEN`,
`HF_HUB_OFFLINE`, `HF_ENDPOINT`), at the catalog's pinned commit; release files (a plain URL)
go to huggingface_hub's assets folder for prodepth. Every file's sha256 is checked against the
catalog after download, and a pull that fails leaves nothing behind: what it downloaded is
removed, partial files included. Errors are one-line `ModelError`s naming the model.
"""

from __future__ import annotations

import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prodepth_cli.errors import DISK_FULL, ModelError, first_line, write_cause
from prodepth_cli.models.catalog import CatalogModel, ModelFile, human_bytes, sha256_of

HUB = "https://huggingface.co"
ProgressHook = Callable[[str, int | None, int], Callable[[int], None]]
"""progress(description, total_bytes, already_done) -> advance(n_bytes)."""

_CHUNK = 1 << 20


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", HUB)


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


def installed_path(model: CatalogModel) -> Path | None:
    """The local path of `model`'s graph when all of its files are downloaded, else None."""
    paths = [_cached(model, f) for f in model.files]
    if any(p is None for p in paths):
        return None
    return paths[0]


def pull(model: CatalogModel, progress: ProgressHook | None = None) -> Path:
    """Download every file of `model` not yet here, check each sha256; returns the graph's
    path. On any failure, what this pull downloaded is removed and ModelError raised."""
    missing = [f for f in model.files if _cached(model, f) is None]
    _check_space(model, missing)
    fresh: list[Path] = []
    try:
        for file in missing:
            path = _download(model, file, progress)
            fresh.append(path)
            expected = file.sha256 or _hub_sha256(path)
            digest = sha256_of(path)
            if digest != expected:
                raise ModelError(
                    f"{model.ref}: checksum mismatch for {file.path} (expected "
                    f"{expected[:12]}..., got {digest[:12]}...); the download was removed"
                )
    except BaseException:
        for path in fresh:
            _remove_file(model, path)
        _remove_partials(model)
        raise
    path = installed_path(model)
    assert path is not None  # every file was just downloaded and checked
    return path


def remove(model: CatalogModel) -> list[Path]:
    """Delete `model`'s downloaded files (and their cache entries); returns what was removed."""
    removed = []
    for file in model.files:
        path = _cached(model, file)
        if path is not None:
            _remove_file(model, path)
            removed.append(path)
    return removed


def verify(model: CatalogModel) -> list[str]:
    """Check every downloaded file of `model` against its sha256 (the catalog's, else the
    one the hub reported); returns one line per file that is missing or differs."""
    problems = []
    for file in model.files:
        path = _cached(model, file)
        if path is None:
            problems.append(f"{model.ref}: {file.path} is not downloaded")
            continue
        expected = file.sha256 or _hub_sha256(path)
        if sha256_of(path) != expected:
            problems.append(f"{model.ref}: {file.path} does not match its sha256 ({path})")
    return problems


def manual_hint(model: CatalogModel) -> str:
    """How to get `model` without this command: its download address and `--model PATH`."""
    first = model.file_url(model.files[0], HUB)
    others = " and its " + ", ".join(f.path for f in model.files[1:]) if model.files[1:] else ""
    beside = " beside it" if others else ""
    return f"download {first}{others}{beside} by hand and run with --model PATH"


# -- Hugging Face files ---------------------------------------------------------------------


def _cached(model: CatalogModel, file: ModelFile) -> Path | None:
    if model.url is not None:
        path = _assets_dir(model) / file.path
        return path if path.is_file() else None
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(model.repo, file.path, revision=model.revision)
    return Path(found) if isinstance(found, str) and Path(found).is_file() else None


def _download(model: CatalogModel, file: ModelFile, progress: ProgressHook | None) -> Path:
    if offline():
        raise ModelError(
            f"{model.ref}: not downloaded, and offline (HF_HUB_OFFLINE is set); "
            f"{manual_hint(model)}"
        )
    if model.url is not None:
        return _download_url(model, file, progress)
    from huggingface_hub import errors as hf
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # its retry warnings are ours to sum up in one line
    try:
        return Path(
            hf_hub_download(
                model.repo,
                file.path,
                revision=model.revision,
                tqdm_class=_tqdm_class(progress, f"{model.ref} {file.path}"),
            )
        )
    except hf.LocalEntryNotFoundError:
        # huggingface_hub's answer when the hub cannot be reached at all (checked first: it
        # is also an EntryNotFoundError)
        raise ModelError(
            f"{model.ref}: {endpoint()} cannot be reached; {manual_hint(model)}"
        ) from None
    except hf.RepositoryNotFoundError:
        raise ModelError(
            f"{model.ref}: repository {model.repo} not found on {endpoint()} "
            "(or it needs an HF_TOKEN)"
        ) from None
    except hf.RevisionNotFoundError:
        raise ModelError(
            f"{model.ref}: revision {model.revision} not found in {model.repo}"
        ) from None
    except hf.EntryNotFoundError:
        raise ModelError(
            f"{model.ref}: {file.path} not found in {model.repo} at {model.revision[:12]}"
        ) from None
    except hf.HfHubHTTPError as exc:
        raise ModelError(
            f"{model.ref}: download of {file.path} failed ({first_line(exc)})"
        ) from None
    except OSError as exc:
        raise _os_error(model, file, exc) from None
    except Exception as exc:  # httpx transport errors: a connection cut halfway, a timeout
        raise ModelError(
            f"{model.ref}: download of {file.path} failed ({first_line(exc)}); nothing was "
            "kept, run the pull again"
        ) from None


def _hub_sha256(path: Path) -> str:
    """The sha256 the hub reported for a large (LFS) file: huggingface_hub names the cached
    blob by it. Small files have a git hash there instead, so they cannot be checked."""
    blob = path.resolve().name
    if len(blob) == 64 and all(c in "0123456789abcdef" for c in blob):
        return blob
    return f"(no sha256 known for {path.name})"


def _remove_file(model: CatalogModel, path: Path) -> None:
    """Remove a downloaded file; in the hub cache also its blob (when no other snapshot
    links to it) and the folders this leaves empty."""
    if model.url is not None:
        path.unlink(missing_ok=True)
        _prune_empty(path.parent, _assets_dir(model).parents[2])
        return
    repo_dir = _repo_cache_dir(model)
    blob = path.resolve()
    path.unlink(missing_ok=True)
    if blob != path and not _linked(repo_dir / "snapshots", blob):
        blob.unlink(missing_ok=True)
        lock = repo_dir.parent / ".locks" / repo_dir.name / f"{blob.name}.lock"
        lock.unlink(missing_ok=True)
    _prune_repo(repo_dir)


def _remove_partials(model: CatalogModel) -> None:
    """What a failed pull leaves: `*.incomplete` blobs and "no such file" markers (the hub
    cache), or `*.part` files (release downloads)."""
    if model.url is not None:
        for part in _assets_dir(model).rglob("*.part"):
            part.unlink(missing_ok=True)
            _prune_empty(part.parent, _assets_dir(model).parents[2])
        return
    repo_dir = _repo_cache_dir(model)
    for part in (repo_dir / "blobs").glob("*.incomplete"):
        part.unlink(missing_ok=True)
    for file in model.files:
        (repo_dir / ".no_exist" / model.revision / file.path).unlink(missing_ok=True)
    _prune_repo(repo_dir)


def _repo_cache_dir(model: CatalogModel) -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE) / ("models--" + model.repo.replace("/", "--"))


def _prune_repo(repo_dir: Path) -> None:
    """Remove a repo's cache folder (and its lock folder) once no file is left in it."""
    if repo_dir.is_dir() and not any(p.is_file() or p.is_symlink() for p in repo_dir.rglob("*")):
        shutil.rmtree(repo_dir)
        _prune_empty(repo_dir.parent / ".locks" / repo_dir.name, repo_dir.parent)


def _linked(snapshots: Path, blob: Path) -> bool:
    return any(p.is_symlink() and p.resolve() == blob for p in snapshots.rglob("*"))


def _prune_empty(folder: Path, stop: Path) -> None:
    """Remove `folder` and its parents while they are empty, up to (not including) `stop`."""
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def _tqdm_class(progress: ProgressHook | None, description: str) -> Any:
    """A tqdm class for huggingface_hub that reports to `progress` instead of drawing."""
    from tqdm.auto import tqdm

    class Reporter(tqdm):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)
            total, initial = kwargs.get("total"), kwargs.get("initial", 0)
            self._advance = progress(description, total, initial) if progress else None

        def update(self, n: float | None = 1) -> bool | None:
            if self._advance and n:
                self._advance(int(n))
            return None

    return Reporter


# -- release files (plain URLs) -------------------------------------------------------------


def _assets_dir(model: CatalogModel) -> Path:
    """huggingface_hub's assets folder for prodepth's release files (the layout of its
    `cached_assets_path`, which would create the folder even to look)."""
    from huggingface_hub import constants

    assets = Path(constants.HF_ASSETS_CACHE).expanduser()
    return assets / "prodepth" / model.name / model.variant


def _download_url(model: CatalogModel, file: ModelFile, progress: ProgressHook | None) -> Path:
    """Stream `file` to a `.part` beside its place, renamed once complete."""
    dst = _assets_dir(model) / file.path
    dst.parent.mkdir(parents=True, exist_ok=True)
    part = dst.with_name(dst.name + ".part")
    url = model.file_url(file, endpoint())
    try:
        with urllib.request.urlopen(url, timeout=30) as response, open(part, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            advance = progress(f"{model.ref} {file.path}", total, 0) if progress else None
            done = 0
            while block := response.read(_CHUNK):
                out.write(block)
                done += len(block)
                if advance:
                    advance(len(block))
        if total is not None and done != total:
            raise ModelError(
                f"{model.ref}: download of {file.path} was cut at {done} of {total} bytes; "
                "nothing was kept, run the pull again"
            )
        os.replace(part, dst)
    except urllib.error.HTTPError as exc:
        part.unlink(missing_ok=True)
        raise ModelError(f"{model.ref}: {url} answered {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        part.unlink(missing_ok=True)
        raise ModelError(
            f"{model.ref}: {url} cannot be reached ({exc.reason}); {manual_hint(model)}"
        ) from None
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise _os_error(model, file, exc) from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return dst


# -- shared ---------------------------------------------------------------------------------


def _check_space(model: CatalogModel, files: list[ModelFile]) -> None:
    """Refuse before downloading what the disk cannot hold."""
    if not files:
        return
    folder = _assets_dir(model) if model.url is not None else _repo_cache_dir(model).parent
    while not folder.exists():  # the disk it will be on
        folder = folder.parent
    known = [f.bytes for f in files if f.bytes is not None]
    need = sum(known) if len(known) == len(files) else model.bytes
    free = shutil.disk_usage(folder).free
    if free < need:
        raise ModelError(
            f"{model.ref}: needs {human_bytes(need)} but only {human_bytes(free)} is free in "
            f"{folder} (set HF_HOME to a larger disk)"
        )


def _os_error(model: CatalogModel, file: ModelFile, exc: OSError) -> ModelError:
    if exc.errno in DISK_FULL:
        return ModelError(
            f"{model.ref}: {write_cause(exc)} while downloading {file.path} (needs "
            f"{human_bytes(model.bytes)}; set HF_HOME to a larger disk); nothing was kept"
        )
    reason = write_cause(exc)
    return ModelError(
        f"{model.ref}: download of {file.path} failed ({reason}); nothing was kept, "
        "run the pull again"
    )
