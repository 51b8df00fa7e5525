-- One definition of a visit (DESIGN.md): the ticket_visits view now reads visits_of(), one
-- site and service day at a time, instead of spelling the definition out a second time.
-- Before, the view (0002, 0003) and visits_of() (0004) each carried it, held equal by tests.
--
-- visits_of() gains the ticket's number (the view has it); otherwise it is as 0004 made it.
-- The view keeps every column's name, position, type and meaning (CREATE OR REPLACE VIEW
-- checks that). A ticket's events all carry the site and the service day it was issued on,
-- so the visits of each (site, day) pair of the log are all the visits. A filter on the
-- view's site_id or service_day selects the pairs through the (site_id, service_day, seq)
-- index before any visit is made. `python -m bench.visits_view` (2.7 M events, 30 sites x
-- 100 days): one day 33 ms instead of 1.4 s, one site 0.20 s instead of 1.6 s; a scan of
-- the whole view, visit by visit for every pair, 10 s instead of 2.6 s.
DROP FUNCTION visits_of(text, date, date);

CREATE FUNCTION visits_of(p_site text, p_from date, p_to date)
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
           ev.service, ev.ts AS enqueued_at, ev.data ->> 'number' AS number,
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
SELECT s.site_id, s.service_day, s.ticket_id, s.segment, s.service, s.number, s.priority,
       s.source,
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
