"""Settings resolution of the services: flag > environment > default.

A settings class is a frozen dataclass whose fields name their environment variable in
``metadata={"env": "LANDMARK_..."}``. Unknown keys are rejected, values are parsed to the
field's type and a bad value raises ``ValueError`` naming the variable or flag.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any, TypeVar, get_type_hints

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def parse(raw: str, kind: Any, source: str) -> Any:
    """``raw`` (from a flag or an environment variable called ``source``) as a ``kind``."""
    try:
        if kind is bool:
            low = raw.strip().lower()
            if low in _TRUE | _FALSE:
                return low in _TRUE
            raise ValueError(raw)
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        if kind == tuple[float, ...]:
            return tuple(float(x) for x in raw.replace(",", " ").split())
        if kind == tuple[str, ...]:
            return tuple(x.strip() for x in raw.split(",") if x.strip())
        return raw
    except ValueError:
        raise ValueError(
            f"{source}={raw!r} is not a valid {getattr(kind, '__name__', kind)}"
        ) from None


def setting(default: Any, env: str, help: str = "", flag: bool = True) -> Any:  # noqa: A002
    """A settings field: ``default``, unless environment variable ``env`` (or its command-line
    flag, ``--field-name``) says. ``help`` is the flag's help text; ``flag=False`` keeps a
    setting to the environment (secrets stay out of ``ps``)."""
    return dataclasses.field(default=default, metadata={"env": env, "help": help, "flag": flag})


def check_positive(obj: Any, *names: str) -> None:
    """ValueError naming the first of ``names`` that is not positive, or a bad port."""
    port = getattr(obj, "port", 0)
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is out of range 0-65535")
    for name in names:
        if getattr(obj, name) <= 0:
            raise ValueError(f"{name} must be positive, got {getattr(obj, name)}")


def load(
    cls: type[T], overrides: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
) -> T:
    """Build ``cls`` from explicit overrides (e.g. CLI flags; None = not given), then the
    environment, then the field defaults."""
    env = os.environ if env is None else env
    overrides = dict(overrides or {})
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"unknown setting(s) for {cls.__name__}: {', '.join(unknown)}")
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if overrides.get(f.name) is not None:
            values[f.name] = overrides[f.name]
            continue
        var = f.metadata.get("env")
        if var and var in env:
            values[f.name] = parse(env[var], hints[f.name], var)
    return cls(**values)
