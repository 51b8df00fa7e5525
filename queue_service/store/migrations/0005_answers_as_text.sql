-- The stored answer of an idempotent request is kept as the exact JSON text that was sent
-- (a retry is answered byte for byte as the first request was), not as jsonb: nothing
-- queries inside it, and parsing every answer into jsonb at each group commit cost the
-- database about a quarter of its CPU on the ticket-issuing path (bench/README.md).
ALTER TABLE idempotency_keys ALTER COLUMN response TYPE text USING response::text;
