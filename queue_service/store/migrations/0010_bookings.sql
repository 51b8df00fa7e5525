-- Issue 17: antrian online. Bookings are events of the same log (booking_made,
-- booking_rescheduled, booking_cancelled, booking_checked_in, booking_missed; the
-- `ticket_id` column holds the booking's id) and a remote join's confirmation is
-- ticket_confirmed. A booking outlives the day it was made on, so start-up reads the
-- events of every booking whose slot is today or later (EventStore.read_bookings): this
-- index finds them by the slot day their booking_made / booking_rescheduled events name.
CREATE INDEX ticket_events_booking_day
    ON ticket_events (site_id, (data ->> 'day'))
 WHERE type IN ('booking_made', 'booking_rescheduled');
