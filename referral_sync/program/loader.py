"""Load and validate the program file; every problem is reported with its key path."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from referral_sync.errors import PolicyError
from referral_sync.program.schema import ProgramFile

DEFAULT_FILENAME = "referral-sync.yaml"


@dataclass(frozen=True)
class LoadedProgram:
    """A validated program file plus where it came from and its content hash."""

    config: ProgramFile
    source: str
    content_hash: str

    @property
    def version(self) -> str:
        """The ``version`` the author gave the file."""
        return self.config.version


def default_program_text() -> str:
    """The commented default program that ``referral-sync init`` writes."""
    return resources.files("referral_sync.program").joinpath("default.yaml").read_text("utf-8")


def _key_path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        # pydantic puts union member names (e.g. "Clause", "function-after[...]") in the
        # location of a failed union branch; they are not keys the author wrote.
        if isinstance(item, str) and (item[:1].isupper() or "[" in item):
            continue
        parts.append(f"[{item}]" if isinstance(item, int) else f".{item}")
    return "".join(parts).lstrip(".") or "(top level)"


def _problems(error: ValidationError) -> list[str]:
    seen: dict[str, None] = {}
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key (not part of the program file format)"
        seen[f"{_key_path(item['loc'])}: {message}"] = None
    return list(seen)


def content_hash(data: Any) -> str:
    """A short stable hash of the parsed program, independent of comments and key order."""
    canonical = json.dumps(data, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def parse_program(text: str, source: str = "<string>") -> LoadedProgram:
    """Parse and validate program YAML.

    Raises:
        PolicyError: with one "key.path: reason" entry per problem.
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown place"
        raise PolicyError(f"{source}: not valid YAML", [f"{where}: {exc}"]) from exc
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: must be a mapping", ["(top level): must be a mapping"])
    try:
        config = ProgramFile.model_validate(data)
    except ValidationError as exc:
        problems = _problems(exc)
        raise PolicyError(f"{source}: {len(problems)} problem(s)", problems) from exc
    return LoadedProgram(config=config, source=source, content_hash=content_hash(data))


def load_program(path: Path | None) -> LoadedProgram:
    """Load ``path``, else ``./referral-sync.yaml`` if present, else the built-in default.

    Raises:
        PolicyError: if the file is missing, unreadable or invalid.
    """
    if path is None:
        candidate = Path(DEFAULT_FILENAME)
        if not candidate.exists():
            return parse_program(default_program_text(), "built-in default program")
        path = candidate
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise PolicyError(f"cannot read program file {path}: {exc.strerror}") from exc
    return parse_program(text, str(path))
