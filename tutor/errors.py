"""Domain errors: each is a problem the user can act on, shown as one line, never a traceback."""


class TutorError(Exception):
    """A problem the user can fix; its message is shown as one line."""


class ConfigError(TutorError):
    """A setting is unknown, of the wrong type, or out of range."""


class ModelError(TutorError):
    """The chat or embedding model is missing or cannot be loaded."""


class ChecksumError(ModelError):
    """A model file's SHA-256 does not match the one it must have."""


class CorpusError(TutorError):
    """A guide is missing, unreadable, or of an unsupported type."""


class IndexMissingError(TutorError):
    """There is no index yet, or it cannot be opened."""


class IngestBusyError(TutorError):
    """Another ingest holds the index lock."""


class QuestionError(TutorError):
    """The question is empty, too long, or otherwise not askable."""


class PresetError(TutorError):
    """The system prompt preset is unknown or malformed."""


class BusyError(TutorError):
    """The model is busy and the line of waiting questions is full."""
