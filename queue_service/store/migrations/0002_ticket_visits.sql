-- ticket_visits: the stable analytics interface, one row per ticket visit.
-- A visit is one queue segment of a ticket: issue (or transfer in) until finish, no-show,
-- cancel or transfer out. Definitions (docs/DESIGN.md):
--   wait    = first call - start of the segment (issue, or transfer in); null if never called
--   walk    = start - last call; 0 where the counter did not use "start"
--   service = end - start (or end - last call without "start"); for served, incomplete,
--             referred and transferred segments
--   within_target = wait <= the service's target (target_wait_seconds is filled by reports
--             joining configuration; the live metrics count it at call time)
CREATE VIEW ticket_visits AS
WITH segments AS (
    SELECT site_id, service_day, ticket_id, segment, service, ts AS enqueued_at,
           data ->> 'number' AS number, data ->> 'priority' AS priority,
           data ->> 'source' AS source, ts AS ticket_issued_at
      FROM ticket_events
     WHERE type = 'ticket_issued'
    UNION ALL
    SELECT t.site_id, t.service_day, t.ticket_id, t.segment + 1, t.data ->> 'to_service', t.ts,
           i.data ->> 'number', i.data ->> 'priority', i.data ->> 'source', i.ts
      FROM ticket_events t
      JOIN ticket_events i ON i.ticket_id = t.ticket_id AND i.type = 'ticket_issued'
     WHERE t.type = 'ticket_transferred'
),
facts AS (
    SELECT ticket_id, segment,
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
           max(counter_id) FILTER (WHERE type = 'ticket_called') AS counter_id
      FROM ticket_events
     WHERE ticket_id IS NOT NULL AND type <> 'ticket_issued'
     GROUP BY ticket_id, segment
)
SELECT s.site_id, s.service_day, s.ticket_id, s.segment, s.service, s.number, s.priority,
       s.source, f.counter_id, s.ticket_issued_at, s.enqueued_at, f.first_called_at,
       f.last_called_at, f.started_at, f.finished_at, f.outcome, coalesce(f.calls, 0) AS calls,
       extract(epoch FROM f.first_called_at - s.enqueued_at)::double precision AS wait_seconds,
       CASE WHEN f.outcome IN ('no_show', 'cancelled') OR f.last_called_at IS NULL THEN NULL
            WHEN f.started_at IS NULL THEN
                 CASE WHEN f.finished_at IS NULL THEN NULL ELSE 0::double precision END
            ELSE extract(epoch FROM f.started_at - f.last_called_at)::double precision
       END AS walk_seconds,
       CASE WHEN f.outcome IN ('served', 'incomplete', 'referred', 'transferred') THEN
            extract(epoch FROM f.finished_at - coalesce(f.started_at, f.last_called_at))
              ::double precision
       END AS service_seconds
  FROM segments s
  LEFT JOIN facts f ON f.ticket_id = s.ticket_id AND f.segment = s.segment;

COMMENT ON VIEW ticket_visits IS
  'One row per ticket visit (queue segment). Stable analytics interface; see docs/analytics.md.';
