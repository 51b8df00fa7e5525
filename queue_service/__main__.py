"""`python -m queue_service` runs the command-line interface."""

from queue_service.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
