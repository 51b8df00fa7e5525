-- Issue 17: antrian online. Reports compare the waits of booked citizens (tickets issued
-- at a booking's check-in, source `booking`) with everyone else's, over rolled-up days
-- too: the rollup keeps each visit's source, as visits_of() gives it. Rows rolled up
-- before this migration take theirs from their ticket's ticket_issued event.
ALTER TABLE report_visits ADD COLUMN source text;

UPDATE report_visits r
   SET source = e.data ->> 'source'
  FROM ticket_events e
 WHERE e.ticket_id = r.ticket_id AND e.type = 'ticket_issued' AND e.site_id = r.site_id;
