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

try:  # Super-NaturalInstructions (`niv2.*`): the data directory's sample or FLANJAX_NIV2_TASKS
    from flanjax.tasks import niv2  # noqa: F401
except (OSError, ValueError) as e:  # a malformed task file is named, never breaks this import
    logging.getLogger(__name__).warning("niv2 tasks not registered: %s", e)

try:  # the Flan 2022 collection (`flan2022.*`), when FLANJAX_FLAN2022_DIR names its folder
    from flanjax.tasks import flan2022  # noqa: F401
except (OSError, ValueError) as e:  # a missing folder or bad shard is named, never breaks this
    logging.getLogger(__name__).warning("flan2022 tasks not registered: %s", e)
