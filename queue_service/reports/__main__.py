"""`python -m queue_service.reports --site S --from D --to D --format csv|html|json`."""

from __future__ import annotations

import argparse
import sys

from queue_service.reports.cli import add_arguments, main

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m queue_service.reports")
    add_arguments(parser)
    sys.exit(main(parser.parse_args()))
