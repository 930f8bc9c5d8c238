"""Golden fixtures from the reference implementation (PyPI `relik` 1.0.7, PyTorch) for the parity tests.

`reference_fixtures()` returns a directory written by `tests/reference/make_fixtures.py`, run under the
reference's own venv (built by `tests/reference/build_env.sh`; never mixed with the JAX venv). It is
cached under `relik_jax.paths.CACHE / "reference-fixtures" / <hash of make_fixtures.py + build_env.sh>`, so it
is rebuilt only when those scripts change; a file lock serialises concurrent pytest workers. Anything missing
makes the call FAIL with a message saying how to fix it (tests never skip). Layout of the directory:
tests/reference/README.md.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from relik_jax.paths import CACHE, data_path

REFERENCE_SCRIPTS = Path(__file__).resolve().parent / "reference"
BUILD_ENV = REFERENCE_SCRIPTS / "build_env.sh"
MAKE_FIXTURES = REFERENCE_SCRIPTS / "make_fixtures.py"
MAKE_PIPELINE_FOLDERS = REFERENCE_SCRIPTS / "make_pipeline_folders.py"
MAKE_PATCH_FIXTURES = REFERENCE_SCRIPTS / "make_patch_fixtures.py"
COMPLETE_MARKER = "COMPLETE"

# Generous: building the venv takes ~1 min and the fixtures ~2 min on an idle 2-core machine.
BUILD_TIMEOUT_S = 1800
FIXTURES_TIMEOUT_S = 1800


class ReferenceUnavailable(RuntimeError):
    """The reference venv or its fixtures could not be produced (the message says why and how to fix it)."""


def reference_venv() -> Path:
    """Where build_env.sh puts the reference venv (same default and override as the script)."""
    return Path(
        os.environ.get("RELIK_REFERENCE_VENV", Path.home() / ".cache" / "relik-jax" / "venv-reference")
    )


def fixtures_hash() -> str:
    """Content hash of the scripts that determine the fixtures (cache key)."""
    h = hashlib.sha256()
    for script in (MAKE_FIXTURES, BUILD_ENV):
        h.update(script.name.encode())
        h.update(script.read_bytes())
    return h.hexdigest()[:16]


def _tail(text: str, n: int = 4000) -> str:
    return text if len(text) <= n else "…" + text[-n:]


def _run(cmd: list[str], timeout: int, what: str, env: dict[str, str]) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        raise ReferenceUnavailable(f"{what} timed out after {timeout} s: {' '.join(cmd)}") from e
    except OSError as e:
        raise ReferenceUnavailable(f"{what} could not start ({e}): {' '.join(cmd)}") from e
    if proc.returncode != 0:
        raise ReferenceUnavailable(
            f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n"
            f"--- stdout ---\n{_tail(proc.stdout)}\n--- stderr ---\n{_tail(proc.stderr)}"
        )


def ensure_reference_venv() -> Path:
    """Build the reference venv if needed (idempotent; instant when its marker exists). Returns its python."""
    if not BUILD_ENV.exists():
        raise ReferenceUnavailable(f"missing {BUILD_ENV} (the reference venv builder)")
    env = {**os.environ, "RELIK_REFERENCE_VENV": str(reference_venv())}
    _run(
        ["bash", str(BUILD_ENV)],
        BUILD_TIMEOUT_S,
        "building the reference venv (needs pip access to the package registry; see "
        "shared/reference/reference-env.md; run `bash tests/reference/build_env.sh` to see the error)",
        env,
    )
    python = reference_venv() / "bin" / "python"
    if not python.exists():
        raise ReferenceUnavailable(f"build_env.sh succeeded but {python} does not exist")
    return python


def _build_once(root: Path, key: str, script: Path, args: list[str], what: str) -> Path:
    """`root/key`, written by `script args... OUT` under the reference venv unless already COMPLETE."""
    root.mkdir(parents=True, exist_ok=True)
    dest = root / key
    if (dest / COMPLETE_MARKER).exists():
        return dest
    with open(root / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be building the same directory: wait for it
        if (dest / COMPLETE_MARKER).exists():
            return dest
        python = ensure_reference_venv()
        tmp = root / f"{key}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(dest, ignore_errors=True)  # an incomplete earlier attempt
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONNOUSERSITE": "1"}
        env.pop("PYTHONPATH", None)  # keep the JAX checkout's packages out of the reference interpreter
        try:
            _run([str(python), str(script), *args, str(tmp)], FIXTURES_TIMEOUT_S,
                 f"{what} ({script.relative_to(REFERENCE_SCRIPTS.parent.parent)}, reference venv)", env)
            (tmp / COMPLETE_MARKER).write_text(key + "\n")
            tmp.rename(dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def reference_fixtures() -> Path:
    """Reference fixtures for this version of make_fixtures.py/build_env.sh (built on first use)."""
    root, key = CACHE / "reference-fixtures", fixtures_hash()
    if (root / key / COMPLETE_MARKER).exists():
        return root / key
    try:
        data = data_path()
    except FileNotFoundError as e:
        raise ReferenceUnavailable(f"reference fixtures need the project's shared data: {e}") from e
    return _build_once(root, key, MAKE_FIXTURES, ["--data", str(data)], "generating the reference fixtures")


def reference_pipeline_folders() -> Path:
    """Pipeline folders written by the reference's `Relik.save_pretrained` over the fixture components, and the
    reference's outputs when it loads them (tests/reference/make_pipeline_folders.py; cached like the fixtures,
    keyed by that script and the fixtures' key, since the folders name the fixture components by absolute path)."""
    fixtures = reference_fixtures()
    key = hashlib.sha256(MAKE_PIPELINE_FOLDERS.read_bytes() + fixtures.name.encode()).hexdigest()[:16]
    return _build_once(CACHE / "reference-pipelines", key, MAKE_PIPELINE_FOLDERS, [str(fixtures)],
                       "writing the reference pipeline folders")


def reference_patch_fixtures() -> Path:
    """The span reader's outputs on windows whose candidates fill several rows, from readers whose tokenizer says
    a shorter model_max_length than the rows (tests/reference/make_patch_fixtures.py; cached like the pipeline
    folders, keyed by that script and the fixtures' key)."""
    fixtures = reference_fixtures()
    key = hashlib.sha256(MAKE_PATCH_FIXTURES.read_bytes() + fixtures.name.encode()).hexdigest()[:16]
    return _build_once(CACHE / "reference-patches", key, MAKE_PATCH_FIXTURES, [str(fixtures), "--data",
                       str(data_path())], "running the span reader on multi-patch windows")


if __name__ == "__main__":
    print(reference_fixtures())
    print(reference_pipeline_folders())
    print(reference_patch_fixtures())
