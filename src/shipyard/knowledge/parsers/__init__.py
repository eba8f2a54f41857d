"""Per-format text extractors behind :func:`shipyard.knowledge.parsing.parse_document`.

Each module turns raw bytes into headed blocks through a :class:`~.common.Collector`; the
public entry point owns type detection, dispatch and the conversion of library errors.
"""
