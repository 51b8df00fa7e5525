-- The shapes of one group commit's rows (bench/README.md, "Latest").
--
-- A batch travels as two arrays of these records instead of one array per column: the
-- driver checks and encodes one record per row rather than one value per column, about a
-- quarter less work per commit on both sides. An event's data arrive as JSON text and are
-- parsed into the jsonb column on insert.
CREATE TYPE antrian_event_row AS (
    seq          bigint,
    site_id      text,
    service_day  date,
    type         text,
    ts           timestamptz,
    ticket_id    text,
    counter_id   text,
    service      text,
    segment      smallint,
    data         text
);

CREATE TYPE antrian_answer_row AS (
    site_id      text,
    key          text,
    request_hash text,
    status       smallint,
    response     text,
    last_seq     bigint,
    created_at   timestamptz
);
