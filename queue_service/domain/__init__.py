"""The pure ticket domain: state machine, queue ordering, numbering. No I/O imports here."""
