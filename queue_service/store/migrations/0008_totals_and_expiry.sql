-- Issue 14: numbers that stay true across restarts and midnights.
--
-- 1. `site_totals`: a site's cumulative totals (every exported counter and histogram of
--    queue_service/domain/totals.py, as SiteTotals.to_json writes them) through its last
--    closed service day. At start-up the service adds them to the replay of today, so the
--    counters in /metrics never go back at a restart (Prometheus would take the drop for a
--    reset and count the day so far twice). Written when the live state rolls over to a new
--    day, and at start-up for every day not yet added (a missed midnight, an upgrade).
-- 2. `ticket_expired`: the event that closes a ticket still waiting, called or being served
--    when its service day ended (outcome `expired`). visits_of() learns it: such a visit's
--    finished_at is the day's end, its outcome `expired`, no service time, and a walk only
--    if it was started (as the live histogram observed it).
CREATE TABLE site_totals (
    site_id     text PRIMARY KEY,
    through_day date NOT NULL,
    totals      jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE site_totals IS
  'Cumulative totals of a site through a closed service day (restored at start-up).';

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
       extract(epoch FROM f.first_called_at - s.enqueued_at)::double precision,
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
