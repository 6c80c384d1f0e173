"""``sflowlab collector``: the sFlow-RT compatible collector (UDP in, REST out).

Live: listens for sFlow on UDP and serves the REST API until SIGTERM. ``--replay FILE`` feeds a
capture instead, with its timestamps as the clock, then keeps serving the REST API.
Exit status 2 for a configuration that cannot be used or a port already in use (one line on
stderr, no traceback).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_CONFIG = 2


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("collector", help="run the sFlow collector and its REST API",
                              description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--config", metavar="FILE.toml", help="configuration file")
    p.add_argument("--sflow-port", type=int, help="UDP port for sFlow (default 6343)")
    p.add_argument("--sflow-host", action="append", metavar="ADDR",
                   help="address to receive sFlow on (repeatable; default 0.0.0.0 and ::)")
    p.add_argument("--http-port", type=int, help="REST API port (default 8008)")
    p.add_argument("--http-host", help="REST API address (default 127.0.0.1)")
    p.add_argument("--state-dir", type=Path, help="where REST definitions persist")
    p.add_argument("--workers", type=int,
                   help="analytics processes, sharded by agent (default 0: in-process)")
    p.add_argument("--record-dir", type=Path, help="record received datagrams to rotating pcaps")
    p.add_argument("--replay", metavar="FILE.pcap", help="feed a capture instead of listening")
    p.add_argument("--speed", type=float, default=0.0,
                   help="replay speed factor (default 0: as fast as possible)")
    p.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sflowlab.codec.pcap import PcapError
    from sflowlab.collector.config import ConfigError, load_config
    from sflowlab.collector.daemon import Daemon, ReplayClock
    from sflowlab.collector.logs import setup_logging

    setup_logging(args.log_level.upper())
    try:
        cfg = load_config(args.config)
        for option, attr in (("sflow_port", "sflow_port"), ("http_port", "http_port"),
                             ("http_host", "http_host"), ("state_dir", "state_dir"),
                             ("record_dir", "record_dir"), ("workers", "workers")):
            if getattr(args, option) is not None:
                setattr(cfg, attr, getattr(args, option))
        if args.sflow_host:
            cfg.sflow_hosts = tuple(args.sflow_host)
        daemon = Daemon(cfg, ReplayClock()) if args.replay else Daemon(cfg)
    except (ConfigError, ValueError) as e:
        return _refuse(str(e))
    daemon.install_signals()
    try:
        try:
            daemon.start_http()
        except OSError as e:
            return _refuse(f"cannot serve HTTP on {cfg.http_host}:{cfg.http_port}: {e}")
        if args.replay:
            try:
                daemon.replay(args.replay, args.speed)
            except (OSError, PcapError) as e:
                return _refuse(f"cannot replay {args.replay}: {e}")
        else:
            try:
                daemon.start_listener()
            except OSError as e:
                return _refuse(f"cannot receive sFlow on UDP port {cfg.sflow_port}: {e}")
        daemon.wait()
    finally:
        daemon.stop()
    return 0


def _refuse(message: str) -> int:
    print(f"sflowlab collector: {message}", file=sys.stderr)
    return EXIT_CONFIG
