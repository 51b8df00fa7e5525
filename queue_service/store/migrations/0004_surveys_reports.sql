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

-- The ticket_visits view restricted to one site and a range of service days, read through
-- the (site_id, service_day, seq) index. The view itself groups the whole event log before
-- a filter on site or day can apply, which is fine for a day and far too slow for 90. The
-- definitions are the view's (as 0003 defines it, with the estimate given at issue);
-- tests/test_reports.py checks that both agree. A ticket's events all carry the service
-- day it was issued on.
CREATE FUNCTION visits_of(p_site text, p_from date, p_to date)
RETURNS TABLE (
    site_id text, service_day date, ticket_id text, segment integer, service text,
    priority text, source text, counter_id text, ticket_issued_at timestamptz,
    enqueued_at timestamptz, first_called_at timestamptz, last_called_at timestamptz,
    started_at timestamptz, finished_at timestamptz, outcome text, calls bigint,
    wait_seconds double precision, walk_seconds double precision,
    service_seconds double precision, estimated_wait_seconds double precision
)
LANGUAGE sql STABLE AS $$
WITH ev AS (
    SELECT * FROM ticket_events e
     WHERE e.site_id = p_site AND e.service_day BETWEEN p_from AND p_to
),
segments AS (
    SELECT ev.site_id, ev.service_day, ev.ticket_id, ev.segment::integer AS segment,
           ev.service, ev.ts AS enqueued_at, ev.data ->> 'priority' AS priority,
           ev.data ->> 'source' AS source, ev.ts AS ticket_issued_at,
           (ev.data ->> 'estimated_wait_seconds')::double precision AS estimated_wait_seconds
      FROM ev
     WHERE ev.type = 'ticket_issued'
    UNION ALL
    SELECT t.site_id, t.service_day, t.ticket_id, t.segment + 1, t.data ->> 'to_service', t.ts,
           i.data ->> 'priority', i.data ->> 'source', i.ts, NULL::double precision
      FROM ev t
      JOIN ev i ON i.ticket_id = t.ticket_id AND i.type = 'ticket_issued'
     WHERE t.type = 'ticket_transferred'
),
facts AS (
    SELECT ev.ticket_id, ev.segment::integer AS segment,
           min(ts) FILTER (WHERE type = 'ticket_called') AS first_called_at,
           max(ts) FILTER (WHERE type IN ('ticket_called', 'ticket_recalled')) AS last_called_at,
           count(*) FILTER (WHERE type IN ('ticket_called', 'ticket_recalled')) AS calls,
           max(ts) FILTER (WHERE type = 'ticket_started') AS started_at,
           max(ts) FILTER (WHERE type IN ('ticket_finished', 'ticket_no_show',
                                          'ticket_transferred', 'ticket_cancelled')) AS finished_at,
           max(CASE type WHEN 'ticket_finished' THEN data ->> 'outcome'
                         WHEN 'ticket_no_show' THEN 'no_show'
                         WHEN 'ticket_transferred' THEN 'transferred'
                         WHEN 'ticket_cancelled' THEN 'cancelled' END) AS outcome,
           max(ev.counter_id) FILTER (WHERE type = 'ticket_called') AS counter_id
      FROM ev
     WHERE ev.ticket_id IS NOT NULL AND ev.type <> 'ticket_issued'
     GROUP BY ev.ticket_id, ev.segment
)
SELECT s.site_id, s.service_day, s.ticket_id, s.segment, s.service, s.priority, s.source,
       f.counter_id, s.ticket_issued_at, s.enqueued_at, f.first_called_at, f.last_called_at,
       f.started_at, f.finished_at, f.outcome, coalesce(f.calls, 0),
       extract(epoch FROM f.first_called_at - s.enqueued_at)::double precision,
       CASE WHEN f.outcome IN ('no_show', 'cancelled') OR f.last_called_at IS NULL THEN NULL
            WHEN f.started_at IS NULL THEN
                 CASE WHEN f.finished_at IS NULL THEN NULL ELSE 0::double precision END
            ELSE extract(epoch FROM f.started_at - f.last_called_at)::double precision
       END,
       CASE WHEN f.outcome IN ('served', 'incomplete', 'referred', 'transferred') THEN
            extract(epoch FROM f.finished_at - coalesce(f.started_at, f.last_called_at))
              ::double precision
       END,
       s.estimated_wait_seconds
  FROM segments s
  LEFT JOIN facts f ON f.ticket_id = s.ticket_id AND f.segment = s.segment
$$;

-- Each counter's open spans (opened until the next pause or close) of one site and range
-- of days. A span still open at the end of the data ends at p_open_end when given (now,
-- for the current day), else at the last event of that site and day.
CREATE FUNCTION counter_spans_of(p_site text, p_from date, p_to date, p_open_end timestamptz)
RETURNS TABLE (service_day date, counter_id text, opened_at timestamptz, closed_at timestamptz)
LANGUAGE sql STABLE AS $$
WITH ce AS (
    SELECT e.service_day, e.counter_id, e.type, e.ts,
           lead(e.ts) OVER (PARTITION BY e.service_day, e.counter_id ORDER BY e.seq) AS next_ts
      FROM ticket_events e
     WHERE e.site_id = p_site AND e.service_day BETWEEN p_from AND p_to
       AND e.ticket_id IS NULL AND e.counter_id IS NOT NULL
       AND e.type IN ('counter_opened', 'counter_paused', 'counter_closed')
)
SELECT ce.service_day, ce.counter_id, ce.ts,
       coalesce(ce.next_ts, p_open_end,
                (SELECT max(x.ts) FROM ticket_events x
                  WHERE x.site_id = p_site AND x.service_day = ce.service_day))
  FROM ce
 WHERE ce.type = 'counter_opened'
$$;

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

-- Seconds covered by a multirange (busy, open and idle-while-queue time of counters).
CREATE FUNCTION multirange_seconds(m tstzmultirange) RETURNS double precision
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(sum(extract(epoch FROM upper(r) - lower(r))), 0)::double precision
      FROM unnest(m) AS r
$$;
