-- One definition of a visit (DESIGN.md): the ticket_visits view reads visits_of(), one
-- site and service day at a time, instead of spelling the definition out a second time.
-- visits_of() gained the ticket's number, which changes its result type: CREATE OR REPLACE
-- cannot do that, so the old function goes here and views.sql creates the new one
-- (and the view reading it) after the numbered migrations. `python -m bench.visits_view`
-- (2.7 M events, 30 sites x 100 days): one day 33 ms instead of 1.4 s, one site 0.20 s
-- instead of 1.6 s; a scan of the whole view, visit by visit for every pair, 10 s instead
-- of 2.6 s.
DROP FUNCTION IF EXISTS visits_of(text, date, date);
