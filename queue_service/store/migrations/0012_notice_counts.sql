-- Issue 17, item 7: reminders delivered and given up, in the reports (docs/reports.md,
-- docs/webhooks.md).
--
-- Outbox rows are deleted 7 days after they are delivered or given up, so a report over a
-- month cannot count them there. Each row's final outcome adds one to a count of its site,
-- service day, kind and service here, kept as long as the reports' rollups are:
-- store/outbox.py records the outcome and the count in one statement (a CTE whose INSERT
-- reads the rows its UPDATE changed), and the UPDATE changes only a row still pending. A
-- row's state leaves `pending` once, so its count is added exactly once, however often
-- and however late the worker records it (again after a lost answer, or after a database
-- outage); a retried attempt changes no state and adds nothing.
--
-- service_day: the site's service day of the outcome (its local date, as Site.service_day
-- gives it), computed by the webhook worker from the site's timezone in the configuration;
-- a site no longer configured counts on the outcome's UTC date. The report's range is in
-- service days, so a reminder sent at 07:30 WITA (23:30 UTC the day before) counts on the
-- day the hall saw it.
--
-- Counts start with this migration: outcomes recorded before it (the outbox came in the
-- same release, migration 0009) are not counted.
CREATE TABLE notice_counts (
    site_id     text NOT NULL,
    service_day date NOT NULL,
    kind        text NOT NULL,                   -- NoticeKind
    -- The service the notice names (its payload's `service`); '' when it names none
    -- (such a notice counts in the site's totals only).
    service     text NOT NULL,
    outcome     text NOT NULL CHECK (outcome IN ('delivered', 'failed')),
    n           integer NOT NULL CHECK (n > 0),
    PRIMARY KEY (site_id, service_day, kind, service, outcome)
);

COMMENT ON TABLE notice_counts IS
  'Notices delivered to the webhook or given up, per site, service day, kind and service.'
  ' Nothing personal.';
