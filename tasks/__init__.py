"""Task and mixture definitions; installed as `flanjax.tasks`.

Importing this package registers every task and mixture defined here in seqio's
registries. To add your own, write a module beside `builtin.py` that calls
`flanjax.data.registry.register_templated_task` and
`flanjax.data.mixing.register_mixture`, and import it below (README, "Adding a
task or mixture").
"""

import logging

from flanjax.tasks import builtin  # noqa: F401  (registers the built-in suite)

try:  # the real datasets (`flan.*`); registers none, and says why, without data
    from flanjax.tasks import flan  # noqa: F401
except (OSError, ValueError) as e:  # unreadable data must never break this import
    logging.getLogger(__name__).warning("flan tasks not registered: %s", e)
