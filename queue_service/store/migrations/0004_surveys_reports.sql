-- Citizens' satisfaction surveys (SKM, PermenPANRB 14/2017) tied to the visit, and the
-- rollups that keep a 90-day report fast (docs/reports.md).

-- One survey per ticket, tied to the visit it rates (ticket_id, segment = the served visit
-- in ticket_visits), never to a person: no name, NIK or phone is asked or stored. The wait
-- and service time are copied at submission so satisfaction can be related to them
-- without re-reading the event log.
CREATE TABLE surveys (
    ticket_id        text        PRIMARY KEY,
    site_id          text        NOT NULL,
    service_day      date        NOT NULL,             -- the visit's day, site timezone
    segment          smallint    NOT NULL,             -- the served visit of the ticket
    service          text        NOT NULL,
    counter_id       text,
    wait_seconds     double precision,                 -- the ticket's total wait, all visits
    service_seconds  double precision,                 -- the served visit's service time
    mode             text        NOT NULL CHECK (mode IN ('skm', 'quick')),
    u1 smallint CHECK (u1 BETWEEN 1 AND 4),
    u2 smallint CHECK (u2 BETWEEN 1 AND 4),
    u3 smallint CHECK (u3 BETWEEN 1 AND 4),
    u4 smallint CHECK (u4 BETWEEN 1 AND 4),
    u5 smallint CHECK (u5 BETWEEN 1 AND 4),
    u6 smallint CHECK (u6 BETWEEN 1 AND 4),
    u7 smallint CHECK (u7 BETWEEN 1 AND 4),
    u8 smallint CHECK (u8 BETWEEN 1 AND 4),
    u9 smallint CHECK (u9 BETWEEN 1 AND 4),
    rating           smallint    CHECK (rating BETWEEN 1 AND 4),   -- quick one-tap mode
    comment          text        CHECK (char_length(comment) <= 500),
    channel          text        NOT NULL CHECK (channel IN ('phone', 'counter')),
    submitted_at     timestamptz NOT NULL,
    CONSTRAINT surveys_answers_match_mode CHECK (
        (mode = 'skm' AND rating IS NULL
             AND u1 IS NOT NULL AND u2 IS NOT NULL AND u3 IS NOT NULL
             AND u4 IS NOT NULL AND u5 IS NOT NULL AND u6 IS NOT NULL
             AND u7 IS NOT NULL AND u8 IS NOT NULL AND u9 IS NOT NULL)
        OR (mode = 'quick' AND rating IS NOT NULL
             AND num_nonnulls(u1, u2, u3, u4, u5, u6, u7, u8, u9) = 0)
    )
);
CREATE INDEX surveys_site_day ON surveys (site_id, service_day);

-- visits_of(), counter_spans_of() and multirange_seconds(), first defined here, live in
-- views.sql.

-- One row per visit of every rolled-up (closed) service day: the columns reports read,
-- copied from visits_of() once a day is over.
CREATE TABLE report_visits (
    site_id          text        NOT NULL,
    service_day      date        NOT NULL,
    ticket_id        text        NOT NULL,
    segment          integer     NOT NULL,
    service          text,
    priority         text,
    counter_id       text,
    enqueued_at      timestamptz NOT NULL,
    first_called_at  timestamptz,
    finished_at      timestamptz,
    outcome          text,
    wait_seconds     double precision,
    walk_seconds     double precision,
    service_seconds  double precision,
    estimated_wait_seconds double precision,
    PRIMARY KEY (site_id, service_day, ticket_id, segment)
);

-- Each counter's open, busy and idle-while-queue seconds of every rolled-up day (computed
-- with the counter's services as configured when the day was rolled up: normally the
-- morning after).
CREATE TABLE report_counter_days (
    site_id                   text             NOT NULL,
    service_day               date             NOT NULL,
    counter_id                text             NOT NULL,
    open_seconds              double precision NOT NULL,
    busy_seconds              double precision NOT NULL,
    idle_while_queue_seconds  double precision NOT NULL,
    PRIMARY KEY (site_id, service_day, counter_id)
);

-- Which (site, day) are rolled up, and the last event seq seen then: a later event of that
-- day (a correction) makes the day stale and it is rolled up again.
CREATE TABLE report_days (
    site_id      text        NOT NULL,
    service_day  date        NOT NULL,
    last_seq     bigint      NOT NULL,
    rolled_at    timestamptz NOT NULL,
    PRIMARY KEY (site_id, service_day)
);
