"""The CLI's commands, one module per command group.

Each module has ``register(commands)``, which adds its sub-parsers to the
``paretonas`` parser and sets ``handler(args, console) -> int`` on each.
"""

from __future__ import annotations

from orchestrator.commands import (
    bench,
    jobs,
    measure,
    models,
    plugins,
    resume,
    search,
    supernet,
    targets,
)

#: Command modules in the order ``paretonas --help`` lists them.
COMMAND_MODULES = [search, resume, jobs, supernet, models, measure, targets, bench, plugins]
