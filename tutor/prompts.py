"""System prompt presets: one Markdown file each in prompts/, with front matter (name, description)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .corpus import split_front_matter
from .errors import CorpusError, PresetError

NEUTRAL_SYSTEM_PROMPT = "You are a helpful assistant."


@dataclass(frozen=True)
class Preset:
    """A named system prompt."""

    name: str
    description: str
    system_prompt: str


def load_presets(folder: Path) -> dict[str, Preset]:
    """All presets in a folder, by name; a malformed one is an error naming its file."""
    presets: dict[str, Preset] = {}
    for path in sorted(folder.glob("*.md")):
        try:
            body, meta = split_front_matter(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, CorpusError) as exc:
            raise PresetError(f"{path}: cannot read this preset: {exc}") from None
        name = meta.get("name", path.stem)
        if not body.strip():
            raise PresetError(f"{path}: the preset has no system prompt")
        presets[name] = Preset(name, meta.get("description", ""), body.strip())
    if not presets:
        raise PresetError(f"no system prompt presets (*.md) in {folder}")
    return presets


NO_PRESET = Preset("none", "No system prompt of ours: the model alone, under a neutral one.", NEUTRAL_SYSTEM_PROMPT)


def pick_preset(presets: dict[str, Preset], name: str) -> Preset:
    """The preset called `name` ("none": the neutral prompt), or an error listing the ones there are."""
    if name == NO_PRESET.name and name not in presets:
        return NO_PRESET
    try:
        return presets[name]
    except KeyError:
        raise PresetError(f"unknown preset {name!r}; choose one of: {', '.join(sorted(presets))}") from None
