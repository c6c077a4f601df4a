"""The topic catalog: the event types webhooks subscribe to.

Topics are data. The packaged ``topics.json`` holds the reference product's seventeen; an
operator adds their own with ``HOOKLINE_TOPICS_FILE`` (same format; a name already in the
catalog replaces the packaged entry).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from .errors import InvalidInput, UnknownTopic
from .models import Topic

_REQUIRED_KEYS = ("name", "description", "schema", "example")


def _topic(entry: dict[str, Any], source: str) -> Topic:
    missing = [key for key in _REQUIRED_KEYS if key not in entry]
    if missing:
        raise ValueError(f"{source}: topic {entry.get('name')!r} lacks {', '.join(missing)}")
    jsonschema.Draft202012Validator.check_schema(entry["schema"])
    return Topic(
        name=entry["name"],
        description=entry["description"],
        group=entry.get("group", "Other"),
        schema=entry["schema"],
        example=entry["example"],
    )


class Catalog:
    def __init__(self, topics: list[Topic]) -> None:
        self._topics = {topic.name: topic for topic in topics}
        self._validators = {
            t.name: jsonschema.Draft202012Validator(t.schema) for t in self._topics.values()
        }

    @classmethod
    def load(cls, extra_file: str | None = None) -> Catalog:
        packaged = resources.files("hookline").joinpath("topics.json").read_text("utf-8")
        topics = [_topic(entry, "topics.json") for entry in json.loads(packaged)]
        if extra_file:
            entries = json.loads(Path(extra_file).read_text("utf-8"))
            topics += [_topic(entry, extra_file) for entry in entries]
        return cls(topics)

    def __iter__(self) -> Iterator[Topic]:
        return iter(self._topics.values())

    def __contains__(self, name: object) -> bool:
        return name in self._topics

    def names(self) -> list[str]:
        return list(self._topics)

    def get(self, name: str, field: str = "topic") -> Topic:
        try:
            return self._topics[name]
        except KeyError:
            raise UnknownTopic(field, name, self.names()) from None

    def validate(self, name: str, data: Any) -> None:
        """Raise InvalidInput when ``data`` does not match the topic's schema."""
        error = jsonschema.exceptions.best_match(self._validators[name].iter_errors(data))
        if error is not None:
            where = "data" + "".join(f"[{p!r}]" for p in error.absolute_path)
            raise InvalidInput(where, error.message)
