"""Serial devices: ticket dispensers, counter keypads and ESC/POS ticket printers.

`framing`, `dispenser`, `keypad` and `escpos` are pure (bytes in, values out); `link` is
the one small interface to a port (pyserial in a reader thread); `supervisor` runs one
task per device that connects, reads, closes on error or silence and backs off;
`manager` owns those tasks for the app and exports their health.
"""
