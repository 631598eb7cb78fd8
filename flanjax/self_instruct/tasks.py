"""Importing this module registers the Self-Instruct task files named in
$FLANJAX_SELF_INSTRUCT: entries separated by the path separator (":" on Linux),
each `PATH` (task name `self_instruct.<folder>` for `<folder>/tasks.jsonl`) or
`NAME=PATH`. Use it on any command with `--module_import=flanjax.self_instruct.tasks`
(or `MIXTURE_OR_TASK_MODULE = 'flanjax.self_instruct.tasks'` in a gin file):

    FLANJAX_SELF_INSTRUCT=/tmp/si/tasks.jsonl flanjax train \\
      --module_import=flanjax.self_instruct.tasks \\
      --gin.MIXTURE_OR_TASK_NAME=\\"self_instruct.si\\" ...

A file that cannot be read stops the import with its name (the command then exits 2
with that line).
"""

from __future__ import annotations

import os

from flanjax.self_instruct.task_file import register_self_instruct_task

ENV = "FLANJAX_SELF_INSTRUCT"


def parse_entries(value: str) -> list[tuple[str | None, str]]:
    """(name or None, path) of each entry of an $FLANJAX_SELF_INSTRUCT value."""
    out = []
    for entry in value.split(os.pathsep):
        entry = entry.strip()
        if not entry:
            continue
        name, sep, path = entry.partition("=")
        out.append((name.strip(), path.strip()) if sep else (None, entry))
    return out


def register_from_env() -> list[str]:
    """Registers every file of $FLANJAX_SELF_INSTRUCT; returns the task names."""
    names = []
    for name, path in parse_entries(os.environ.get(ENV, "")):
        names.append(register_self_instruct_task(path, name=name).name)
    return names


REGISTERED = register_from_env()
