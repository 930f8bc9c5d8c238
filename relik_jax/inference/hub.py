"""Hugging Face Hub repositories as local folders: the local cache first, a download only where allowed.

The cache is the one `huggingface_hub` writes (`<cache>/models--org--name/snapshots/<commit>/...`, the commit
named by `refs/<revision>`), at `HF_HUB_CACHE`, else `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`,
else `~/.cache/huggingface/hub`; the environment is read at each call, not at import, so a test or a caller can
point it elsewhere. With `huggingface_hub` installed (the `[hub]` extra) lookups go through
`snapshot_download(local_files_only=True)`, and downloads through `snapshot_download`; without it the cache
layout is read directly, and a download raises the error that names the extra.

`Fetcher` resolves many names and reports every repository it could not get in ONE error (`MissingRepositories`)
with the commands that fetch them, so that an offline user learns everything to download at once.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence
from pathlib import Path

from relik_jax.extras import missing_extra

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
COMMIT = re.compile(r"^[0-9a-f]{40}$")
TRUE = {"1", "true", "yes", "on"}


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, as huggingface_hub resolves it (environment read now)."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "huggingface" / "hub"


def offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set: only the local cache may be used."""
    return any(os.environ.get(v, "").strip().lower() in TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def is_repo_id(name: str) -> bool:
    """`org/name` or `name`, as the hub spells repositories (a local path never resolves as one)."""
    return bool(REPO_ID.match(name)) and ".." not in name


def repo_folder(repo_id: str, cache_dir: Path | None = None) -> Path:
    """`<cache>/models--org--name` (whether or not it exists)."""
    return (cache_dir or hub_cache_dir()) / ("models--" + repo_id.replace("/", "--"))


def snapshot_of(path: Path) -> tuple[str, str] | None:
    """(repo id, commit) when `path` lies in a hub cache snapshot (`models--org--name/snapshots/<commit>/...`)."""
    parts = Path(path).absolute().parts
    for i in range(len(parts) - 2):
        if parts[i].startswith("models--") and parts[i + 1] == "snapshots":
            return parts[i][len("models--"):].replace("--", "/"), parts[i + 2]
    return None


def has_files(folder: Path, required: Sequence[Sequence[str]]) -> bool:
    """Every group of `required` has at least one existing file in `folder` (e.g. [["config.json"],
    ["model.safetensors", "pytorch_model.bin"]])."""
    return all(any((folder / name).exists() for name in group) for group in required)


def cached_snapshot(repo_id: str, revision: str | None = None, cache_dir: Path | None = None) -> Path | None:
    """The local snapshot folder of `repo_id` at `revision` (default: main), or None if it is not cached."""
    cache_dir = cache_dir or hub_cache_dir()
    try:
        import huggingface_hub
    except ImportError:
        huggingface_hub = None
    if huggingface_hub is not None:
        try:
            return Path(huggingface_hub.snapshot_download(repo_id, revision=revision, cache_dir=cache_dir,
                                                          local_files_only=True))
        except Exception:  # LocalEntryNotFoundError, HFValidationError, ...: not (validly) cached
            return None
    # The same lookup on the cache layout: refs/<revision> names the commit whose snapshot holds the files.
    repo = repo_folder(repo_id, cache_dir)
    revision = revision or "main"
    commit = revision if COMMIT.match(revision) else None
    ref = repo / "refs" / revision
    if commit is None and ref.is_file():
        commit = ref.read_text().strip()
    snapshot = repo / "snapshots" / commit if commit else None
    return snapshot if snapshot is not None and snapshot.is_dir() else None


def download(repo_id: str, revision: str | None = None, cache_dir: Path | None = None,
             allow_patterns: Sequence[str] | None = None) -> Path:
    """Download (or update) `repo_id` into the cache; its snapshot folder."""
    try:
        import huggingface_hub
    except ImportError as e:
        raise missing_extra("huggingface_hub", "hub", f"downloading {repo_id} from the Hugging Face Hub") from e
    return Path(huggingface_hub.snapshot_download(repo_id, revision=revision, cache_dir=cache_dir or hub_cache_dir(),
                                                  allow_patterns=list(allow_patterns) if allow_patterns else None))


@dataclasses.dataclass
class Missing:
    """A component that could not be made local: its name as configured, its role, and why."""

    name: str
    role: str
    reason: str
    files: tuple[str, ...] = ()  # only these files are needed (e.g. a backbone's config.json); () = all


class MissingRepositories(FileNotFoundError):
    """Components that are neither local folders nor in the hub cache, and could not be downloaded."""

    def __init__(self, what: str, missing: Sequence[Missing], cache_dir: Path):
        self.missing = list(missing)
        super().__init__(missing_message(what, self.missing, cache_dir))


def missing_message(what: str, missing: Sequence[Missing], cache_dir: Path) -> str:
    """The error text: each missing component, then the commands that fetch every missing repository."""
    lines = [f"{what}: {len(missing)} component(s) could not be found:"]
    lines += [f"  - {m.name} ({m.role}): {m.reason}" for m in missing]
    repos = [m for m in missing if is_repo_id(m.name) and not Path(m.name).exists()]
    if repos:
        env = "" if cache_dir == default_cache_dir() else f"HF_HUB_CACHE={cache_dir} "
        lines.append("Fetch them where the network is reachable, into this cache (or copy that cache folder here):")
        lines += [f"  {env}hf download {m.name}{''.join(' ' + f for f in m.files)}" for m in repos]
        lines.append("(`hf` comes with huggingface_hub >= 0.34; before: `huggingface-cli download`), or in Python:")
        lines.append("  from huggingface_hub import snapshot_download")
        for m in repos:
            patterns = f", allow_patterns={list(m.files)!r}" if m.files else ""
            cache = "" if not env else f", cache_dir={str(cache_dir)!r}"
            lines.append(f"  snapshot_download({m.name!r}{patterns}{cache})")
        lines.append("then load again (where the network is reachable, without HF_HUB_OFFLINE / local_files_only, "
                     "from_pretrained downloads them itself).")
    return "\n".join(lines)


def default_cache_dir() -> Path:
    """The cache huggingface_hub uses with no environment variable set."""
    return Path.home() / ".cache" / "huggingface" / "hub"


class Fetcher:
    """Names (local paths or hub ids) -> local folders; what cannot be had is collected, then raised at once.

    Resolution order for a name: an existing local folder (relative names are tried against each of `bases`,
    then the working directory); a hub id in the local cache whose snapshot has the `required` files; a download
    unless `local_files_only` (default: HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE)."""

    def __init__(self, *, local_files_only: bool | None = None, cache_dir: str | Path | None = None,
                 bases: Sequence[Path] = ()):
        self.local_files_only = offline() if local_files_only is None else local_files_only
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else hub_cache_dir()
        self.bases = list(bases)
        self.missing: list[Missing] = []

    def local(self, name: str | Path, role: str, required: Sequence[Sequence[str]] = (), *,
              revision: str | None = None, files: Sequence[str] = ()) -> Path | None:
        """The local folder of `name`, or None (recorded as missing). `files`: download only these."""
        text = str(name)
        path = Path(text).expanduser()
        candidates = [path] if path.is_absolute() else [b / path for b in self.bases] + [Path.cwd() / path]
        for folder in candidates:
            if folder.is_dir():
                if has_files(folder, required):
                    return folder
                self.missing.append(Missing(text, role, f"local folder {folder} lacks {required_text(required)}"))
                return None
        if not is_repo_id(text):
            self.missing.append(Missing(text, role, "no such local folder"))
            return None
        snapshot = cached_snapshot(text, revision, self.cache_dir)
        if snapshot is not None and has_files(snapshot, required):
            return snapshot
        cached = "incomplete in the local cache" if snapshot is not None else "not in the local cache"
        if self.local_files_only:
            self.missing.append(Missing(text, role, f"{cached} {self.cache_dir}, downloads are off "
                                        "(HF_HUB_OFFLINE / local_files_only)", tuple(files)))
            return None
        try:
            snapshot = download(text, revision, self.cache_dir, allow_patterns=files or None)
        except Exception as e:  # no [hub] extra, network, authentication, unknown repository: report it with the rest
            self.missing.append(Missing(text, role, f"{cached}; download failed: {type(e).__name__}: {e}",
                                        tuple(files)))
            return None
        if not has_files(snapshot, required):
            self.missing.append(Missing(text, role, f"downloaded, but it lacks {required_text(required)}"))
            return None
        return snapshot

    def raise_missing(self, what: str) -> None:
        if self.missing:
            raise MissingRepositories(what, self.missing, self.cache_dir)


def required_text(required: Sequence[Sequence[str]]) -> str:
    return ", ".join(" or ".join(group) for group in required) or "files"
