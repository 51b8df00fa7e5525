"""PostgreSQL: connection, migrations and the event store. All SQL of the service lives here."""
