"""`python -m queue_service.simulate offline | http ...` (= `queue-service simulate ...`)."""

import sys

from queue_service.simulate.cli import run

sys.exit(run())
