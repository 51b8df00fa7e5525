"""Run simulated devices for a demo: every device of a site's configuration, on the local
TCP port its `socket://127.0.0.1:PORT` URL names (or on pseudo-terminals with --pty-dir),
driven from the console.

    python -m devices.sim --config config/example-hall.toml
    python -m devices.sim --config config/example-hall.toml --pty-dir /tmp/antrian-tty

Console commands:
    press DEVICE BUTTON            a citizen takes a ticket at a dispenser
    scan DEVICE CODE               a citizen scans a booking's or remote join's code there
    key DEVICE ADDRESS KEY         an officer presses N R S F X P O on a keypad
    paper DEVICE ok|near|end       the printer's paper roll
    cover DEVICE open|closed       the printer's cover
    unplug DEVICE / replug DEVICE  pull the cable, plug it back
    show                           what each device shows or printed
    quit
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from devices.sim.hardware import SimDispenser, SimKeypadBus, SimPrinter
from devices.sim.ports import PtyPort, SimPort, TcpPort
from queue_service.config import ConfigError, load_config
from queue_service.domain.site import DeviceConfig, Site
from queue_service.domain.vocab import DeviceKind


def build(site: Site, pty_dir: Path | None) -> dict[str, Any]:
    sims: dict[str, Any] = {}
    for device in site.devices:
        port = _port(device, pty_dir)
        if port is None:
            print(f"skipping {device.id}: {device.url} is not a local socket:// address")
            continue
        if device.kind == DeviceKind.DISPENSER:
            numbering = {
                n: (b.prefix, 1) if b.prefix else (site.services[b.service].prefix, b.range[0])  # type: ignore[index]
                for n, b in device.buttons.items()
            }
            sims[device.id] = SimDispenser(port, numbering, heartbeat=5.0, resend=1.0)
        elif device.kind == DeviceKind.KEYPAD:
            sims[device.id] = SimKeypadBus(
                port, sorted(device.addresses), heartbeat=5.0, resend=1.0
            )
        else:
            sims[device.id] = SimPrinter(port)
    return sims


def _port(device: DeviceConfig, pty_dir: Path | None) -> SimPort | None:
    if pty_dir is not None:
        pty_dir.mkdir(parents=True, exist_ok=True)
        return PtyPort(pty_dir / device.id)
    parts = urlsplit(device.url)
    if parts.scheme != "socket" or parts.hostname not in ("127.0.0.1", "localhost"):
        return None
    return TcpPort("127.0.0.1", parts.port or 0)


def show(sims: dict[str, Any]) -> None:
    for name, sim in sims.items():
        if isinstance(sim, SimDispenser):
            print(f"{name}: printed {sim.printed[-5:]}, waiting for ack {sorted(sim.unacked)}")
        elif isinstance(sim, SimKeypadBus):
            shown = {a: f"{d.kind}:{d.text}" for a, d in sim.displays.items()}
            print(f"{name}: displays {shown}")
        else:
            print(
                f"{name}: {len(sim.tickets)} printed, paper_end={sim.paper_end} "
                f"near_end={sim.paper_near_end} cover_open={sim.cover_open}"
            )


async def command(sims: dict[str, Any], words: list[str]) -> bool:
    if not words:
        return True
    verb, args = words[0], words[1:]
    if verb == "quit":
        return False
    if verb == "show":
        show(sims)
        return True
    if not args or args[0] not in sims:
        print(f"unknown device; devices: {', '.join(sims)}")
        return True
    sim = sims[args[0]]
    try:
        if verb == "press":
            print("printed", sim.press(int(args[1])))
        elif verb == "scan":
            kind, text = await sim.scan_and_wait(args[1])
            print(f"printed {text}" if kind == "K" else f"refused: code {text}")
        elif verb == "key":
            print("display:", await sim.press_and_wait(int(args[1]), args[2].upper()))
        elif verb == "paper":
            sim.paper_near_end = args[1] in ("near", "end")
            sim.paper_end = args[1] == "end"
        elif verb == "cover":
            sim.cover_open = args[1] == "open"
        elif verb == "unplug":
            await sim.port.unplug()
        elif verb == "replug":
            await sim.port.replug()
        else:
            print(__doc__)
    except (IndexError, ValueError, KeyError, AttributeError, TimeoutError) as exc:
        print(f"cannot do that: {exc!r}")
    return True


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="site configuration (TOML)")
    parser.add_argument("--site", help="site id (default: the first site with devices)")
    parser.add_argument("--pty-dir", type=Path, help="use pseudo-terminals linked here")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return 1
    sites = [s for s in config.sites.values() if s.devices and (not args.site or s.id == args.site)]
    if not sites:
        print("no site with devices in that configuration", file=sys.stderr)
        return 1
    sims = build(sites[0], args.pty_dir)
    for name, sim in sims.items():
        await sim.start()
        print(f"{name}: {type(sim).__name__} on {sim.port.url}")
    print("type 'help' for commands")
    try:
        while True:
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line:
                break
            if not await command(sims, line.split()):
                break
    finally:
        for sim in sims.values():
            await sim.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
