"""The HTTP front door: app factory, API handlers, auth, errors and the live stream."""
