"""The hall simulator: realistic days of a hall, offline or against a running service.

`profiles.py` (how busy, how people and officers behave), `day.py` (the day as a
discrete-event loop acting through a driver), `offline.py` (mode b: the pure domain on a
manual clock), `http.py` (mode a: the public HTTP API), `cli.py` (`queue-service simulate`).
"""
