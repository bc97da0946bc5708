"""`prodepth models`: the catalog (list, pull, rm), any model's spec and providers (show), and
ensembles of models (ensemble)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from prodepth_cli.commands.common import JsonOption, QuietOption, emit_json, guarded
from prodepth_cli.commands.common import note as say
from prodepth_cli.commands.model_options import (
    KindOption,
    LayoutOption,
    MeanOption,
    SizeOption,
    StdOption,
    download_progress,
    load_model_from_options,
)
from prodepth_cli.errors import ModelError
from prodepth_cli.models import catalog, hub
from prodepth_cli.models.catalog import CatalogModel
from prodepth_cli.models.runtime import (
    MODELS_DIR,
    SHIPPED_NAME,
    default_model_path,
    shipped_model_path,
)

app = typer.Typer(
    help="Depth models: the catalog of public models (list, pull, rm), any model's spec, "
    "ensembles.",
    rich_markup_mode="markdown",
    no_args_is_help=True,
)

NameArgument = Annotated[
    str,
    typer.Argument(
        help="Catalog name, e.g. depth-anything-v2-small (or name:variant).", show_default=False
    ),
]
VariantOption = Annotated[
    str | None,
    typer.Option(
        help="Variant, e.g. fp16 or uint8 (default: the model's own).", show_default=False
    ),
]


@app.command("list")
@guarded
def list_models(json_out: JsonOption = False) -> None:
    """What the catalog has, what is installed, and which model a plain run uses."""
    default = _default_file()
    table = Table(
        "model", "kind", "size", "licence", "installed", "default",
        box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), show_edge=False,
    )  # fmt: skip
    for column in table.columns:
        column.no_wrap = True  # 72 columns wide in all: an 80-column terminal shows it whole
    for model in catalog.all_models():
        path = hub.installed_path(model)
        is_default = path is not None and path.resolve() == default
        if json_out:
            emit_json(
                {
                    **_record(model),
                    "installed": str(path) if path else None,
                    "default": is_default,
                }
            )
        shown = model.ref if model.variant == model.default_variant else f"  :{model.variant}"
        size = catalog.human_bytes(model.bytes)
        table.add_row(
            shown, model.kind, size, model.licence, "yes" if path else "", "*" if is_default else ""
        )
    shipped = _shipped_is_default(default)
    if json_out:
        emit_json({"ref": SHIPPED_NAME, "installed": str(shipped_model_path()), "default": shipped})
        return
    table.add_row(SHIPPED_NAME, "relative", "", "Apache-2.0", "shipped", "*" if shipped else "")
    Console().print(table)
    say(
        "a catalog name is pulled on first use (`--model NAME`) or with `prodepth models pull "
        "NAME`; a plain run uses the best one installed; `prodepth models show NAME` for more"
    )


@app.command("pull")
@guarded
def pull(
    name: NameArgument,
    variant: VariantOption = None,
    json_out: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Download a catalog model at its pinned revision and check its sha256.

    Through huggingface_hub: its cache (`HF_HOME`), `HF_TOKEN` and `HF_HUB_OFFLINE` apply.
    """
    model = _pick(name, variant)
    path = hub.installed_path(model)
    if path is None:
        with download_progress(quiet or json_out) as progress:
            path = hub.pull(model, progress)
        say(f"{model.ref}: installed at {path} ({model.licence})", quiet or json_out)
    else:
        say(f"{model.ref}: already installed at {path}", quiet or json_out)
    if json_out:
        emit_json({**_record(model), "installed": str(path)})


@app.command("rm")
@guarded
def rm(
    name: NameArgument,
    variant: VariantOption = None,
    json_out: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Remove a pulled catalog model's files from the cache."""
    model = _pick(name, variant)
    removed = hub.remove(model)
    if not removed:
        raise ModelError(f"{model.ref}: not installed")
    say(f"{model.ref}: removed {len(removed)} file(s)", quiet or json_out)
    if json_out:
        emit_json({**_record(model), "removed": [str(p) for p in removed]})


@app.command("show")
@guarded
def show(
    models: Annotated[
        list[str] | None,
        typer.Argument(
            help="Model files or catalog names (default: those shipped in models/).",
            show_default=False,
        ),
    ] = None,
    kind: KindOption = None,
    layout: LayoutOption = None,
    size: SizeOption = None,
    mean: MeanOption = None,
    std: StdOption = None,
    json_out: JsonOption = False,
) -> None:
    """Show models: their spec and the providers that load them.

    The spec is inferred from the graph, then presets, the catalog, the JSON beside the model
    and options.
    """
    shipped = [str(p) for p in sorted(MODELS_DIR.glob("*.onnx"))] if MODELS_DIR.is_dir() else []
    default = _default_file()
    table = Table("model", "spec", "providers", "default", show_lines=True)
    for ref in models or shipped:
        entry = catalog.find(ref) if not Path(ref).is_file() else None
        if entry is not None and hub.installed_path(entry) is None:
            _show_not_installed(entry, table, json_out)  # shown, not downloaded
            continue
        model = load_model_from_options(ref, "auto", kind, layout, size, mean, std)
        cpu = load_model_from_options(ref, "cpu", kind, layout, size, mean, std)
        providers = sorted({model.provider, cpu.provider})
        spec = model.tile_net.spec.to_json()
        is_default = model.tile_net.path.resolve() == default
        entry = entry or catalog.match_file(model.tile_net.path)  # a file may be a pulled one
        if json_out:
            emit_json(
                {
                    "model": ref,
                    **(_record(entry) if entry is not None else {}),
                    "path": str(model.tile_net.path),
                    "spec": spec,
                    "providers": providers,
                    "default": is_default,
                }
            )
            continue
        shown = {k: v for k, v in spec.items() if v not in (None, "")}
        title = f"\n{entry.title} ({entry.licence})" if entry is not None else ""
        table.add_row(
            ref + title,
            "\n".join(f"{k}: {v}" for k, v in shown.items()),
            "\n".join(providers),
            "yes" if is_default else "",
        )
    if not json_out:
        Console().print(table)


@app.command("ensemble")
@guarded
def ensemble(
    members: Annotated[
        list[Path],
        typer.Argument(help="Two or more ONNX depth models sharing a spec.", show_default=False),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="The .onnx to write.")],
    json_out: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Merge models into one: each member's map standardised per image, then averaged
    (networks trained apart make different mistakes). The result is checked against the
    members run one by one; its spec is theirs."""
    from prodepth_cli.models.ensemble import ensemble_models

    result = ensemble_models(members, output)
    say(
        f"wrote {result.onnx_path} and {result.spec_path} ({len(members)} members); "
        f"max |ensemble - members| = {result.max_abs_diff:.2e}",
        quiet or json_out,
    )
    if json_out:
        emit_json(
            {
                "onnx": str(result.onnx_path),
                "spec": str(result.spec_path),
                "members": [str(m) for m in members],
                "max_abs_diff": result.max_abs_diff,
            }
        )


def _default_file() -> Path | None:
    """The file a plain run uses (None when $PRODEPTH_MODEL names a model not pulled)."""
    try:
        return default_model_path().resolve()
    except ModelError:
        return None


def _shipped_is_default(default: Path | None) -> bool:
    return default is not None and default == shipped_model_path()


def _show_not_installed(entry: CatalogModel, table: Table, json_out: bool) -> None:
    """A catalog model's record and spec, before it is pulled."""
    about = f"{entry.title}; not installed: pulled on first use ({entry.licence})"
    if json_out:
        emit_json({"model": entry.ref, **_record(entry), "spec": entry.spec, "installed": None})
        return
    spec = "\n".join(f"{k}: {v}" for k, v in entry.spec.items() if v not in (None, ""))
    table.add_row(f"{entry.ref}\n{about}", spec, "", "")


def _pick(name: str, variant: str | None) -> CatalogModel:
    if variant is not None:
        name = f"{name.partition(catalog.VARIANT_SEP)[0]}{catalog.VARIANT_SEP}{variant}"
    return catalog.lookup(name)


def _record(model: CatalogModel) -> dict:
    """A catalog variant as `--json` gives it: where it comes from, pinned (`repo` at the
    commit `revision`, or a release `url`), and each file's path, bytes and sha256 (null
    where the catalog leaves the check to the sha256 the hub reports)."""
    return {
        "name": model.name,
        "title": model.title,
        "variant": model.variant,
        "ref": model.ref,
        "kind": model.kind,
        "bytes": model.bytes,
        "licence": model.licence,
        "source": model.url or f"{model.repo}@{model.revision}",
        "repo": model.repo,
        "revision": model.revision,
        "url": model.url,
        "files": [{"path": f.path, "bytes": f.bytes, "sha256": f.sha256} for f in model.files],
    }
