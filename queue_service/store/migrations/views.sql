-- The definitions computed from the tables: functions and the ticket_visits view, as they
-- are now. The numbered migrations (NNNN_*.sql) are the history of the tables; this file
-- is applied after them, in one transaction under the same lock (store/migrate.py),
-- whenever it differs from what the database last received.
-- Each is CREATE OR REPLACE, which keeps the grants analysts and Grafana were given on
-- them: a change that CREATE OR REPLACE refuses (a column removed or retyped, a function's
-- result changed) is a numbered migration that drops the old definition first (as 0007
-- does for visits_of).

-- One definition of a visit (docs/design.md): one site and a range of service days, read
-- through the (site_id, service_day, seq) index. A ticket's events all carry the site and
-- the service day it was issued on. A visit closed by ticket_expired (its service day
-- ended) has the day's end as finished_at, outcome `expired`, no service time, and a walk
-- only if it was started (as the live histogram observed it).
-- A checked-in booking's ticket (antrian online) names in its `due_at` when it may first
-- be called ahead of walk-ins: its first visit waits from then if that is later than its
-- issue (queue time, DESIGN.md), and never less than 0 (an officer may call it earlier),
-- as the live state counts it; `ticket_issued_at` stays its arrival.
CREATE OR REPLACE FUNCTION visits_of(p_site text, p_from date, p_to date)
RETURNS TABLE (
    site_id text, service_day date, ticket_id text, segment integer, service text,
    number text, priority text, source text, counter_id text, ticket_issued_at timestamptz,
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
           ev.service, greatest(ev.ts, (ev.data ->> 'due_at')::timestamptz) AS enqueued_at,
           ev.data ->> 'number' AS number,
           ev.data ->> 'priority' AS priority,
           ev.data ->> 'source' AS source, ev.ts AS ticket_issued_at,
           (ev.data ->> 'estimated_wait_seconds')::double precision AS estimated_wait_seconds
      FROM ev
     WHERE ev.type = 'ticket_issued'
    UNION ALL
    SELECT t.site_id, t.service_day, t.ticket_id, t.segment + 1, t.data ->> 'to_service', t.ts,
           i.data ->> 'number', i.data ->> 'priority', i.data ->> 'source', i.ts,
           NULL::double precision
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
                                          'ticket_transferred', 'ticket_cancelled',
                                          'ticket_expired')) AS finished_at,
           max(CASE type WHEN 'ticket_finished' THEN data ->> 'outcome'
                         WHEN 'ticket_no_show' THEN 'no_show'
                         WHEN 'ticket_transferred' THEN 'transferred'
                         WHEN 'ticket_cancelled' THEN 'cancelled'
                         WHEN 'ticket_expired' THEN 'expired' END) AS outcome,
           max(ev.counter_id) FILTER (WHERE type = 'ticket_called') AS counter_id
      FROM ev
     WHERE ev.ticket_id IS NOT NULL AND ev.type <> 'ticket_issued'
     GROUP BY ev.ticket_id, ev.segment
)
SELECT s.site_id, s.service_day, s.ticket_id, s.segment, s.service, s.number, s.priority,
       s.source,
       f.counter_id, s.ticket_issued_at, s.enqueued_at, f.first_called_at, f.last_called_at,
       f.started_at, f.finished_at, f.outcome, coalesce(f.calls, 0),
       CASE WHEN f.first_called_at IS NOT NULL THEN
            greatest(extract(epoch FROM f.first_called_at - s.enqueued_at)::double precision, 0)
       END,
       CASE WHEN f.outcome IN ('no_show', 'cancelled') OR f.last_called_at IS NULL THEN NULL
            WHEN f.started_at IS NULL THEN
                 CASE WHEN f.finished_at IS NULL OR f.outcome = 'expired' THEN NULL
                      ELSE 0::double precision END
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
CREATE OR REPLACE FUNCTION counter_spans_of(p_site text, p_from date, p_to date, p_open_end timestamptz)
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

-- Seconds covered by a multirange (busy, open and idle-while-queue time of counters).
CREATE OR REPLACE FUNCTION multirange_seconds(m tstzmultirange) RETURNS double precision
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(sum(extract(epoch FROM upper(r) - lower(r))), 0)::double precision
      FROM unnest(m) AS r
$$;

-- site_id and service_day are taken from the (site, day) pairs, not from the function's
-- rows (they are equal): so a filter on them applies to the pairs, before any visit is made.
CREATE OR REPLACE VIEW ticket_visits AS
SELECT d.site_id, d.service_day, v.ticket_id, v.segment, v.service, v.number, v.priority,
       v.source, v.counter_id, v.ticket_issued_at, v.enqueued_at, v.first_called_at,
       v.last_called_at, v.started_at, v.finished_at, v.outcome, v.calls, v.wait_seconds,
       v.walk_seconds, v.service_seconds, v.estimated_wait_seconds,
       v.wait_seconds - v.estimated_wait_seconds AS prediction_error_seconds
  FROM (SELECT DISTINCT site_id, service_day FROM ticket_events) AS d
 CROSS JOIN LATERAL visits_of(d.site_id, d.service_day, d.service_day) AS v;

COMMENT ON VIEW ticket_visits IS
  'One row per ticket visit (queue segment). Stable analytics interface; see docs/analytics.md.';

-- One row per booking (antrian online) of one site whose slot, as last booked (made or
-- moved), is on a service day in [p_from, p_to], computed from its booking events (their
-- `ticket_id` column holds the booking's id). The events carry the slot as the site's
-- local day and "HH:MM", so the site's timezone (p_timezone, e.g. 'Asia/Makassar') makes
-- `slot_start` an instant. state: booked (not yet checked in), checked_in, cancelled or
-- missed, from the booking's last event. punctuality_seconds = check-in − slot start
-- (negative: early). `late`: checked in after its window, its ticket issued as a
-- walk-in's. `ticket_id`: the ticket issued at check-in (its visits are in visits_of()).
-- Candidates come from the index on the slot days (migration 0010), which holds them as
-- ISO text (whatever the session's DateStyle); no phone number is in the log, nor here.
CREATE OR REPLACE FUNCTION booking_visits_of(p_site text, p_timezone text, p_from date, p_to date)
RETURNS TABLE (
    site_id text, booking_id text, service text, slot_day date, slot_start timestamptz,
    made_at timestamptz, state text, checked_in_at timestamptz,
    punctuality_seconds double precision, ticket_id text, late boolean, moves integer,
    ended_at timestamptz
)
LANGUAGE sql STABLE AS $$
WITH candidates AS (
    SELECT DISTINCT e.ticket_id FROM ticket_events e
     WHERE e.site_id = p_site AND e.type IN ('booking_made', 'booking_rescheduled')
       AND e.data ->> 'day' BETWEEN to_char(p_from, 'YYYY-MM-DD') AND to_char(p_to, 'YYYY-MM-DD')
),
ev AS (
    SELECT e.* FROM ticket_events e JOIN candidates c USING (ticket_id)
     WHERE e.site_id = p_site
       AND e.type IN ('booking_made', 'booking_rescheduled', 'booking_cancelled',
                      'booking_checked_in', 'booking_missed')
),
b AS (
    SELECT ev.ticket_id AS booking_id,
           (array_agg(ev.data ->> 'day' ORDER BY ev.seq DESC)
              FILTER (WHERE ev.type IN ('booking_made', 'booking_rescheduled')))[1] AS day,
           (array_agg(ev.data ->> 'slot' ORDER BY ev.seq DESC)
              FILTER (WHERE ev.type IN ('booking_made', 'booking_rescheduled')))[1] AS slot,
           (array_agg(ev.type ORDER BY ev.seq DESC))[1] AS last_type,
           max(ev.service) AS service,
           min(ev.ts) FILTER (WHERE ev.type = 'booking_made') AS made_at,
           max(ev.ts) FILTER (WHERE ev.type = 'booking_checked_in') AS checked_in_at,
           max(ev.data ->> 'ticket') FILTER (WHERE ev.type = 'booking_checked_in')
             AS issued_ticket,
           coalesce(bool_or((ev.data ->> 'late')::boolean)
                      FILTER (WHERE ev.type = 'booking_checked_in'), false) AS late,
           count(*) FILTER (WHERE ev.type = 'booking_rescheduled')::integer AS moves,
           max(ev.ts) FILTER (WHERE ev.type IN ('booking_cancelled', 'booking_missed'))
             AS ended_at
      FROM ev
     GROUP BY ev.ticket_id
),
placed AS (
    SELECT b.*, b.day::date AS slot_day,
           (b.day::date + b.slot::time) AT TIME ZONE p_timezone AS slot_start
      FROM b
     WHERE b.day::date BETWEEN p_from AND p_to
)
SELECT p_site, p.booking_id, p.service, p.slot_day, p.slot_start, p.made_at,
       CASE p.last_type WHEN 'booking_checked_in' THEN 'checked_in'
                        WHEN 'booking_cancelled' THEN 'cancelled'
                        WHEN 'booking_missed' THEN 'missed'
                        ELSE 'booked' END,
       p.checked_in_at,
       extract(epoch FROM p.checked_in_at - p.slot_start)::double precision,
       p.issued_ticket, p.late, p.moves, p.ended_at
  FROM placed p
$$;

COMMENT ON FUNCTION booking_visits_of(text, text, date, date) IS
  'One row per booking of a site and range of slot days. Stable analytics interface; see docs/analytics.md.';
