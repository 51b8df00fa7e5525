-- The append-only event log. One row per fact; nothing is ever updated or deleted.
-- seq is assigned by the single writer process (guarded by an advisory lock) so that the
-- live stream and replay share one gap-free order.
CREATE TABLE ticket_events (
    seq          bigint      PRIMARY KEY,
    site_id      text        NOT NULL,
    service_day  date        NOT NULL,            -- in the site's own timezone
    type         text        NOT NULL,
    ts           timestamptz NOT NULL,            -- when it happened (domain clock), UTC
    ticket_id    text,
    counter_id   text,
    service      text,                            -- the service of the ticket's segment
    segment      smallint    NOT NULL DEFAULT 0,  -- 0, then +1 for each transfer
    data         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    recorded_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX ticket_events_site_day ON ticket_events (site_id, service_day, seq);
CREATE INDEX ticket_events_ticket ON ticket_events (ticket_id, seq) WHERE ticket_id IS NOT NULL;

-- Responses remembered per Idempotency-Key, written in the same transaction as the events
-- they produced, so a retried request returns the committed answer and never a second ticket.
CREATE TABLE idempotency_keys (
    site_id       text        NOT NULL,
    key           text        NOT NULL,
    request_hash  text        NOT NULL,
    status        smallint    NOT NULL,
    response      jsonb       NOT NULL,
    last_seq      bigint      NOT NULL,
    created_at    timestamptz NOT NULL,
    PRIMARY KEY (site_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
