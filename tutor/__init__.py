"""tutor: a local chat tutor that answers from guides and shows which layer shaped each answer."""

from .answer import Answer, Answered, Event, Explained, Token, Tutor
from .config import Settings, load_settings
from .corpus import Guide, find_guide_files, read_guide
from .errors import TutorError
from .factory import build_embedder, build_tutor
from .index import FolderStore, ingest
from .retrieve import Passage, Retriever

__all__ = [
    "Answer",
    "Answered",
    "Event",
    "Explained",
    "Guide",
    "FolderStore",
    "Passage",
    "Retriever",
    "Settings",
    "Tutor",
    "Token",
    "TutorError",
    "build_embedder",
    "build_tutor",
    "find_guide_files",
    "ingest",
    "load_settings",
    "read_guide",
]
