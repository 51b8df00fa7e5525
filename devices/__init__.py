"""Simulated devices for tests and demos: a dispenser, a keypad bus and an ESC/POS printer,
on real pseudo-terminals or local TCP ports (`python -m devices.sim --help`)."""
