-- ticket_visits, version 2: the estimated wait each ticket was given, and how wrong it was.
-- Every column of version 1 (0002_ticket_visits.sql) keeps its name, position, type and
-- meaning; two columns are added at the end (CREATE OR REPLACE VIEW allows only that):
--   estimated_wait_seconds   the estimate shown at issue (data of the ticket_issued event);
--                            first visit only (segment 0), null where none was given
--   prediction_error_seconds wait_seconds - estimated_wait_seconds: positive when the
--                            citizen waited longer than told; null until called
CREATE OR REPLACE VIEW ticket_visits AS
WITH segments AS (
    SELECT site_id, service_day, ticket_id, segment, service, ts AS enqueued_at,
           data ->> 'number' AS number, data ->> 'priority' AS priority,
           data ->> 'source' AS source, ts AS ticket_issued_at,
           (data ->> 'estimated_wait_seconds')::double precision AS estimated_wait_seconds
      FROM ticket_events
     WHERE type = 'ticket_issued'
    UNION ALL
    SELECT t.site_id, t.service_day, t.ticket_id, t.segment + 1, t.data ->> 'to_service', t.ts,
           i.data ->> 'number', i.data ->> 'priority', i.data ->> 'source', i.ts,
           NULL::double precision
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
),
visits AS (
    SELECT s.site_id, s.service_day, s.ticket_id, s.segment, s.service, s.number, s.priority,
           s.source, f.counter_id, s.ticket_issued_at, s.enqueued_at, f.first_called_at,
           f.last_called_at, f.started_at, f.finished_at, f.outcome,
           coalesce(f.calls, 0) AS calls,
           extract(epoch FROM f.first_called_at - s.enqueued_at)::double precision AS wait_seconds,
           CASE WHEN f.outcome IN ('no_show', 'cancelled') OR f.last_called_at IS NULL THEN NULL
                WHEN f.started_at IS NULL THEN
                     CASE WHEN f.finished_at IS NULL THEN NULL ELSE 0::double precision END
                ELSE extract(epoch FROM f.started_at - f.last_called_at)::double precision
           END AS walk_seconds,
           CASE WHEN f.outcome IN ('served', 'incomplete', 'referred', 'transferred') THEN
                extract(epoch FROM f.finished_at - coalesce(f.started_at, f.last_called_at))
                  ::double precision
           END AS service_seconds,
           s.estimated_wait_seconds
      FROM segments s
      LEFT JOIN facts f ON f.ticket_id = s.ticket_id AND f.segment = s.segment
)
SELECT site_id, service_day, ticket_id, segment, service, number, priority, source,
       counter_id, ticket_issued_at, enqueued_at, first_called_at, last_called_at, started_at,
       finished_at, outcome, calls, wait_seconds, walk_seconds, service_seconds,
       estimated_wait_seconds,
       wait_seconds - estimated_wait_seconds AS prediction_error_seconds
  FROM visits;

COMMENT ON VIEW ticket_visits IS
  'One row per ticket visit (queue segment). Stable analytics interface; see docs/analytics.md.';
