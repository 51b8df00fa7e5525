"""Device families for /metrics (names and labels as in docs/metrics.md, section Devices)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from queue_service.domain.vocab import DeviceKind
from queue_service.exposition import escape, fmt, header

if TYPE_CHECKING:
    from devices.supervisor import DeviceHealth

_FAMILIES = (
    ("qms_device_up", "gauge", "1 when the link is connected and frames/status arrive."),
    (
        "qms_device_present",
        "gauge",
        "0 while the device's address has not opened since the service started (not present).",
    ),
    ("qms_device_reconnects_total", "counter", "Reconnections after a failure."),
    (
        "qms_device_last_frame_timestamp_seconds",
        "gauge",
        "Unix time of the last good frame or status reply.",
    ),
    ("qms_device_frames_total", "counter", "Frames parsed, by result (good or bad)."),
    ("qms_device_discarded_bytes_total", "counter", "Bytes thrown away while resynchronising."),
)
_PRINTER = (
    ("qms_printer_paper_near_end", "1 when the paper roll is near its end.", "paper_near_end"),
    ("qms_printer_paper_end", "1 when out of paper (printing stopped).", "paper_end"),
    ("qms_printer_cover_open", "1 when the cover is open.", "cover_open"),
    ("qms_printer_offline", "1 when the printer reports itself offline.", "offline"),
    (
        "qms_printer_error",
        "1 on an autocutter, unrecoverable or auto-recoverable error.",
        "error",
    ),
)


def render(healths: Sequence[DeviceHealth]) -> str:
    """The exposition text; a printer flag is NaN while no reply received decides it."""
    if not healths:
        return ""
    lines: dict[str, list[str]] = {name: [] for name, _, _ in _FAMILIES}
    printer: dict[str, list[str]] = {name: [] for name, _, _ in _PRINTER}
    for h in healths:
        base = f'site="{escape(h.site)}",device="{escape(h.device)}"'
        labels = f'{base},kind="{escape(h.kind)}"'
        lines["qms_device_up"].append(f"{{{labels}}} {int(h.connected and h.alive)}")
        lines["qms_device_present"].append(f"{{{labels}}} {int(h.present)}")
        lines["qms_device_reconnects_total"].append(f"{{{labels}}} {h.reconnects}")
        if h.last_frame_at is not None:
            lines["qms_device_last_frame_timestamp_seconds"].append(
                f"{{{labels}}} {fmt(h.last_frame_at)}"
            )
        lines["qms_device_frames_total"].append(f'{{{labels},result="good"}} {h.good_frames}')
        lines["qms_device_frames_total"].append(f'{{{labels},result="bad"}} {h.bad_frames}')
        lines["qms_device_discarded_bytes_total"].append(f"{{{labels}}} {h.discarded_bytes}")
        if h.kind == DeviceKind.PRINTER:
            for name, _, flag in _PRINTER:
                # NaN while unknown (not connected, no reply yet, or a reply the printer
                # does not give: one answering DLE EOT 1 alone has unknown paper), never a
                # false 0; alert expressions such as `== 1` stay false, the series stays.
                known = None if h.printer is None else h.printer.flag(flag)
                value = "NaN" if known is None else str(int(known))
                printer[name].append(f"{{{base}}} {value}")
    out = []
    for name, kind, help_text in _FAMILIES:
        out.append(header(name, kind, help_text))
        out.extend(f"{name}{line}\n" for line in lines[name])
    for name, help_text, _ in _PRINTER:
        out.append(header(name, "gauge", help_text))
        out.extend(f"{name}{line}\n" for line in printer[name])
    return "".join(out)
