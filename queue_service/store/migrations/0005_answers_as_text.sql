-- Cheaper group commits on the ticket-issuing path (bench/README.md, "Latest").
--
-- The stored answer of an idempotent request is kept as the exact JSON text that was sent
-- (a retry is answered byte for byte as the first request was), not as jsonb: nothing
-- queries inside it, and every answer was parsed into jsonb at each group commit.
ALTER TABLE idempotency_keys ALTER COLUMN response TYPE text USING response::text;

-- Answers are written in created_at order and read or deleted only by ranges of it (the
-- window at start-up and after a failed commit, the hourly prune): a BRIN index serves
-- that at a fraction of a B-tree's cost per insert. New ranges are summarized as they fill.
DROP INDEX idempotency_keys_created;
CREATE INDEX idempotency_keys_created ON idempotency_keys USING brin (created_at)
    WITH (autosummarize = on);
