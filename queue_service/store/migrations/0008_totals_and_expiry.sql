-- Issue 14: numbers that stay true across restarts and midnights.
--
-- 1. `site_totals`: a site's cumulative totals (every exported counter and histogram of
--    queue_service/domain/totals.py, as SiteTotals.to_json writes them) through its last
--    closed service day. At start-up the service adds them to the replay of today, so the
--    counters in /metrics never go back at a restart (Prometheus would take the drop for a
--    reset and count the day so far twice). Written when the live state rolls over to a new
--    day, and at start-up for every day not yet added (a missed midnight, an upgrade).
-- 2. `ticket_expired`: the event that closes a ticket still waiting, called or being served
--    when its service day ended (outcome `expired`). visits_of() (views.sql) learns
--    it: such a visit's finished_at is the day's end, its outcome `expired`, no service
--    time, and a walk only if it was started (as the live histogram observed it).
CREATE TABLE site_totals (
    site_id     text PRIMARY KEY,
    through_day date NOT NULL,
    totals      jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE site_totals IS
  'Cumulative totals of a site through a closed service day (restored at start-up).';
