-- Issue 17: phone numbers for notices, and the durable outbox of notices (docs/webhooks.md).
--
-- A citizen's phone number lives in two places only:
-- 1. `contacts`: the number to notify about a subject (a booking, or a remote-join ticket),
--    written in the transaction of the event that makes the subject and deleted in the
--    transaction of the event that ends the visit.
-- 2. an `outbox` row, copied from `contacts` when the notice is made (in the transaction of
--    the events behind it), until the row is delivered or given up: then its phone is NULL
--    (the CHECK below holds every row to it).
-- The webhook worker (queue_service/webhook.py) delivers pending rows; delivered and failed
-- rows are deleted 7 days later.
CREATE TABLE contacts (
    site_id     text NOT NULL,
    subject     text NOT NULL,
    phone       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site_id, subject)
);

COMMENT ON TABLE contacts IS
  'Phone numbers of subjects (bookings, remote joins) whose visit is not over. Personal data.';

CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    site_id         text NOT NULL,
    -- The notice's key: a notice is made once per key (ON CONFLICT DO NOTHING), and the
    -- receiver gets it as the Idempotency-Key.
    key             text NOT NULL UNIQUE,
    kind            text NOT NULL,
    subject         text NOT NULL,
    ts              timestamptz NOT NULL,  -- when it happened (the event's time)
    payload         jsonb NOT NULL,        -- the notice's data
    phone           text,                  -- NULL once delivered or given up
    created_at      timestamptz NOT NULL DEFAULT now(),
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    -- A pending row is due from then; a claimed row's lease runs until then.
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_attempt_at timestamptz,
    delivered_at    timestamptz,
    last_error      text,
    CHECK (state = 'pending' OR phone IS NULL)
);

COMMENT ON TABLE outbox IS
  'Notices to deliver to the webhook; the phone is kept only while the row is pending.';

-- The worker's claim: pending rows due by now, soonest first.
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE state = 'pending';
-- One subject's notices are delivered in order: a row waits for the subject's earlier
-- pending rows (the claim's NOT EXISTS).
CREATE INDEX outbox_subject_pending ON outbox (site_id, subject, id) WHERE state = 'pending';
-- The outbox gauges: the rows given up (the pending ones are read through outbox_due).
CREATE INDEX outbox_failed ON outbox (site_id) WHERE state = 'failed';
-- The hourly prune of rows finished more than 7 days ago.
CREATE INDEX outbox_finished ON outbox (last_attempt_at) WHERE state <> 'pending';
