"""The front door of `Relik.from_pretrained`: any pipeline name -> one of our pipeline folders, converted once.

A name is resolved in this order (`pretrained_folder`):
1. a local folder with our `relik.json`: used as it is;
2. a local folder with relik's `config.yaml` (what relik 1.0.7's `Relik.save_pretrained` writes, and what the
   published pipelines such as `sapienzanlp/relik-entity-linking-large` hold): converted (below);
3. a hub id of either, found in the local Hugging Face cache (`relik_jax.inference.hub`), else downloaded unless
   downloads are off (`local_files_only`, default HF_HUB_OFFLINE).

A relik config names its components (reader, retriever question encoder and document index per task) by hub id or
by path (absolute, or relative to the pipeline folder or the working directory); each resolves the same way, and
so does the reader's backbone when its config is needed and not bundled (`reader.convert.KNOWN_BACKBONES`). Every
component that cannot be had is reported in ONE `MissingRepositories` error with the commands that fetch it. The
passage encoder is not fetched: the index already holds the passage vectors.

Conversion writes our folder (reader and encoders in our format, `relik.json` with the pipeline's settings) to
`<models--org--name>/relik-jax/<key>` beside the pipeline's hub snapshot, or under `relik_jax.paths.CACHE /
"pipelines"` when the pipeline is a local folder or its cache is read-only. The key hashes the config and the
identity of every component (hub repo + snapshot commit, or a local folder's path + file sizes and mtimes), so a
new snapshot of anything converts again and an unchanged pipeline loads without converting. Indexes (the published
ones are 10+ GB) are linked, not copied: our loader memory-maps the reference layout as it is; a dangling link
(the snapshot was deleted) converts again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jax
import yaml
from flax import nnx
from rich.console import Console
from rich.progress import Progress

from relik_jax import paths
from relik_jax.inference.hub import Fetcher, Missing, is_repo_id, snapshot_of
from relik_jax.reader.convert import backbone_config, load_reader, load_reference_reader, save_reader
from relik_jax.reader.reader import Reader
from relik_jax.retriever.encoder import Retriever, load_encoder, save_encoder
from relik_jax.retriever.index import DocumentIndex

FORMAT = 1  # of the conversion: bump to convert every cached pipeline again
TASKS = ("span", "triplet")
READER_FILES = (("config.json", "reader_config.json"), ("model.safetensors", "pytorch_model.bin", "params"))
ENCODER_FILES = (("config.json",), ("model.safetensors", "pytorch_model.bin"))
INDEX_FILES = (("documents.jsonl",), ("embeddings.pt", "embeddings.npy"))
PIPELINE_FILES = (("relik.json", "config.yaml"),)
# relik's default for `use_nme` differs by reader class (span reader True, triplet reader False), whatever the
# checkpoint's config says; ours would take the checkpoint's, so the converted config always names it.
USE_NME_DEFAULT = {"span": True, "triplet": False}


@dataclasses.dataclass
class ReferencePipeline:
    """What a relik `config.yaml` says: our settings (RelikConfig fields) and the components by name."""

    settings: dict[str, Any]
    reader: str
    encoders: dict[str, str]  # task -> question encoder
    indexes: dict[str, str]  # task -> document index


def parse_reference_config(config: dict[str, Any]) -> ReferencePipeline:
    """relik's pipeline config (config.yaml, as `Relik.save_pretrained` writes it) -> components + settings."""
    task = str(config.get("task", "span")).lower()  # written as the enum name: SPAN / TRIPLET / BOTH
    if task not in ("span", "triplet", "both"):
        raise ValueError(f"config.yaml: unknown task {config.get('task')!r} (SPAN, TRIPLET or BOTH)")
    tasks = list(TASKS) if task == "both" else [task]
    reader = config.get("reader")
    if isinstance(reader, dict):
        reader_name = reader.get("transformer_model") or reader.get("model_name_or_dir")
        target = str(reader.get("_target_", ""))
    else:
        reader_name, target, reader = reader, "", {}
    if not reader_name:
        raise ValueError("config.yaml: no reader (reader.transformer_model)")
    if "Triplet" in target or "Span" in target:
        kind = "triplet" if "Triplet" in target else "span"
    else:  # a bare reader name: relik picks the class from the checkpoint, which follows the task
        kind = "span" if task == "span" else "triplet"
    size, stride = config.get("window_size"), config.get("window_stride")
    if isinstance(size, str):
        if size.lower() == "sentence":
            raise ValueError("config.yaml: window_size 'sentence' (spaCy sentence windows) is not supported; "
                             "pass window_size=<words> to from_pretrained")
        size, stride = size.lower(), None
    elif size is not None and stride is None:
        stride = size  # relik: no stride -> windows without overlap
    settings = {
        "task": task,
        "top_k": int(config.get("top_k") or 100),  # relik's retriever default k
        "window_size": size,
        "window_stride": stride,
        "metadata_fields": list(config.get("metadata_fields") or []),
        "use_nme": bool(reader.get("use_nme", config.get("use_nme", USE_NME_DEFAULT[kind]))),
        # relik 1.0.7 takes the threshold only per call; a config that names one is honoured
        "relation_threshold": config.get("relation_threshold"),
    }
    return ReferencePipeline(settings, str(reader_name), per_task(config.get("retriever"), tasks, "question_encoder"),
                             per_task(config.get("index"), tasks, "name_or_path"))


def per_task(section: Any, tasks: list[str], key: str) -> dict[str, str]:
    """relik's per-task sections: {span: {...}, triplet: {...}}, one section for all tasks, or a bare name."""
    if not section:
        return {}
    if isinstance(section, dict) and set(section) & set(TASKS):
        items = {t.lower(): v for t, v in section.items() if t.lower() in tasks}
    else:
        items = dict.fromkeys(tasks, section)
    out = {}
    for task, value in items.items():
        name = value.get(key) if isinstance(value, dict) else value
        if name:
            out[task] = str(name)
    return out


def pretrained_folder(name_or_path: str | Path, *, revision: str | None = None, local_files_only: bool | None = None,
                      cache_dir: str | Path | None = None, progress: bool | None = None,
                      destination: str | Path | None = None) -> Path:
    """Our pipeline folder for `name_or_path` (see the module docstring), converting on first use.

    destination: write a self-contained folder there instead (indexes copied in our format, not linked); it must
    not exist yet (`relik-jax convert pipeline SOURCE DESTINATION`)."""
    what = f"Relik.from_pretrained({str(name_or_path)!r})"
    fetcher = Fetcher(local_files_only=local_files_only, cache_dir=cache_dir)
    folder = fetcher.local(name_or_path, "pipeline", PIPELINE_FILES, revision=revision)
    fetcher.raise_missing(what)
    assert folder is not None
    if destination is not None and Path(destination).exists():
        raise FileExistsError(f"{destination} exists: convert into a new folder")
    if (folder / "relik.json").is_file():
        if destination is None:
            return folder
        shutil.copytree(folder, destination)  # (links followed: the copy stands alone)
        return Path(destination)
    config = yaml.safe_load((folder / "config.yaml").read_text()) or {}
    pipeline = parse_reference_config(config)
    components = resolve_components(pipeline, folder, fetcher)
    fetcher.raise_missing(what)
    if destination is not None:
        return convert(pipeline, components, Path(destination), str(name_or_path), progress, link=False)
    key = cache_key((folder / "config.yaml").read_bytes(), components)
    out = conversion_folder(folder, str(name_or_path), key)
    if complete(out):
        return out
    return convert(pipeline, components, out, str(name_or_path), progress)


def resolve_components(pipeline: ReferencePipeline, folder: Path, fetcher: Fetcher) -> dict[str, Any]:
    """Role -> local folder (or, for `backbone`, the backbone config to use; None = the reader finds it itself)."""
    fetcher.bases = [folder]
    found: dict[str, Any] = {"reader": fetcher.local(pipeline.reader, "reader", READER_FILES)}
    for task, name in pipeline.encoders.items():
        found[f"encoder-{task}"] = fetcher.local(name, f"{task} retriever question encoder", ENCODER_FILES)
    for task, name in pipeline.indexes.items():
        found[f"index-{task}"] = fetcher.local(name, f"{task} document index", INDEX_FILES)
    for task in sorted(pipeline.encoders.keys() - pipeline.indexes.keys()):
        fetcher.missing.append(Missing(f"index.{task}", f"{task} document index",
                                       "config.yaml names a retriever but no index"))
    reader = found["reader"]
    found["backbone"] = None
    if reader is not None and (reader / "config.json").is_file():  # a reference reader: its backbone's config
        name = json.loads((reader / "config.json").read_text()).get("transformer_model", "")
        try:
            backbone_config(name, reader)
        except FileNotFoundError:
            if is_repo_id(name):  # only its config.json is needed (the reader checkpoint holds every weight)
                found["backbone"] = fetcher.local(name, "reader backbone (config.json only)", (("config.json",),),
                                                  files=("config.json",))
            else:
                fetcher.missing.append(Missing(name, "reader backbone", "no such local folder"))
    return found


def fingerprint(folder: Path) -> str:
    """Identity of a component folder: hub repo + snapshot commit (immutable), else path + file sizes/mtimes."""
    snapshot = snapshot_of(folder)
    if snapshot is not None:
        return "hub:{}@{}".format(*snapshot)
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        st = f.stat()
        h.update(f"{f.relative_to(folder)}:{st.st_size}:{st.st_mtime_ns};".encode())
    return f"local:{folder.resolve()}:{h.hexdigest()[:16]}"


def cache_key(config: bytes, components: dict[str, Any]) -> str:
    parts = {role: None if path is None else fingerprint(path) for role, path in sorted(components.items())}
    blob = json.dumps({"format": FORMAT, "config": hashlib.sha256(config).hexdigest(), "components": parts})
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def conversion_folder(pipeline: Path, name: str, key: str) -> Path:
    """Beside the pipeline's hub snapshot (`models--org--name/relik-jax/<key>`) when that is writable, else
    `CACHE/pipelines/<name>-<key>`."""
    snapshot = snapshot_of(pipeline)
    if snapshot is not None:
        parts = pipeline.absolute().parts
        repo = Path(*parts[: parts.index("snapshots")])
        try:
            (repo / "relik-jax").mkdir(exist_ok=True)
            if os.access(repo / "relik-jax", os.W_OK):
                return repo / "relik-jax" / key
        except OSError:  # a read-only cache (shared, mounted): fall back to ours
            pass
    slug = re.sub(r"[^A-Za-z0-9._-]+", "--", name.strip("/"))[-80:] or "pipeline"
    return paths.CACHE / "pipelines" / f"{slug}-{key}"


def complete(folder: Path) -> bool:
    """A finished conversion whose linked indexes still exist (their hub snapshots may have been deleted)."""
    return (folder / "relik.json").is_file() and all(p.exists() for p in folder.iterdir() if p.is_symlink())


def convert(pipeline: ReferencePipeline, components: dict[str, Any], out: Path, name: str,
            progress: bool | None = None, link: bool = True) -> Path:
    """Write our pipeline folder `out` (into a temporary sibling, renamed when complete: a crash or a concurrent
    conversion never leaves a half-written folder behind). link: link the indexes instead of copying them."""
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    steps = [("reader", convert_reader)]
    steps += [(role, convert_encoder) for role in components if role.startswith("encoder-")]
    steps += [(role, link_index if link else copy_index) for role in components if role.startswith("index-")]
    show = sys.stderr.isatty() if progress is None else progress
    try:
        with Progress(console=Console(stderr=True), disable=not show) as bar:
            job = bar.add_task(f"converting {name}", total=len(steps))
            for role, step in steps:
                bar.update(job, description=f"converting {name}: {role}")
                step(components, role, tmp)
                bar.advance(job)
        source = {"name": name, "components": {"reader": pipeline.reader,
                                               **{f"encoder-{t}": n for t, n in pipeline.encoders.items()},
                                               **{f"index-{t}": n for t, n in pipeline.indexes.items()}}}
        (tmp / "relik.json").write_text(json.dumps({**pipeline.settings, "converted_from": source}, indent=2) + "\n")
        if out.exists() and not complete(out):  # stale: an index link dangles
            shutil.rmtree(out)
        try:
            tmp.rename(out)
        except OSError:  # another process finished the same conversion first: use its folder
            if not complete(out):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def convert_reader(components: dict[str, Any], role: str, out: Path) -> None:
    folder = components["reader"]
    if (folder / "reader_config.json").is_file():  # already ours
        save_reader(out / "reader", *load_reader(folder))
        return
    backbone = components.get("backbone")
    save_reader(out / "reader", *load_reference_reader(folder, backbone=None if backbone is None else str(backbone)))


def convert_encoder(components: dict[str, Any], role: str, out: Path) -> None:
    folder = components[role]
    config, model = load_encoder(folder)
    save_encoder(model, config, out / f"retriever-{role.split('-', 1)[1]}", tokenizer_folder=folder)


def link_index(components: dict[str, Any], role: str, out: Path) -> None:
    """Link the index folder (both layouts load as they are); copy it in our format where links are refused."""
    try:
        (out / role).symlink_to(Path(components[role]).absolute(), target_is_directory=True)
    except OSError:  # e.g. Windows without the symlink privilege
        copy_index(components, role, out)


def copy_index(components: dict[str, Any], role: str, out: Path) -> None:
    """The index in our format (streamed file to file)."""
    folder = Path(components[role])
    loader = DocumentIndex.load if (folder / "index.json").is_file() else DocumentIndex.from_reference
    loader(folder).save(out / role)


# ------------------------------------------------------------------------------------------------------ devices
def resolve_device(device: jax.Device | str | None) -> jax.Device | None:
    """A jax device, a platform ("cpu", "gpu", "cuda", "tpu") or "platform:index"; None = JAX's default."""
    if device is None or isinstance(device, jax.Device):
        return device
    if not isinstance(device, str):
        raise TypeError(f"device must be a jax.Device or a platform string, got {type(device).__name__}")
    platform, _, index = device.partition(":")
    try:
        devices = jax.devices(platform)
    except RuntimeError as e:
        raise ValueError(f"device {device!r}: no such JAX platform here ({e})") from e
    i = int(index) if index else 0
    if not 0 <= i < len(devices):
        raise ValueError(f"device {device!r}: {platform} has {len(devices)} device(s)")
    return devices[i]


def place(device: jax.Device | None, reader: Reader, retrievers: Iterable[Retriever]) -> None:
    """Commit the reader's and the encoders' parameters to `device`, so their compiled calls run there (inputs
    follow committed parameters); indexes take the device when loaded (`DocumentIndex(devices=...)`)."""
    if device is None:
        return
    reader.update_model(put(reader.model, device))
    for retriever in retrievers:
        retriever.update_encoder(put(retriever.encoder, device))


def put(model: Any, device: jax.Device) -> Any:
    nnx.update(model, jax.device_put(nnx.state(model), device))
    return model
