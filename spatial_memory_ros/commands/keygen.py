"""spatial-memory keygen PATH: write a new random team key file for the team link (team_comm's team_key_file)."""
from __future__ import annotations

import argparse
import sys


def add_parser(subparsers) -> None:
    """Add ``keygen`` to the CLI."""
    parser = subparsers.add_parser(
        "keygen", help="write a new random team key file (mode 0600) for team_comm's team_key_file",
        description="Write 32 random bytes (the team link's HMAC key) to PATH, readable by its owner only. Copy the "
                    "file to every robot of the team over a channel you trust (scp) and start each robot with "
                    "team_key_file:=PATH. To rotate the key, write a new file, copy it to every robot and restart "
                    "their team_comm nodes: robots on different keys drop each other's packets as bad tags.",
        epilog="example: spatial-memory keygen ~/.ros/team.key")
    parser.add_argument("path", help="where to write the key (refused if it exists, unless --force)")
    parser.add_argument("--force", action="store_true", help="replace an existing key file")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Write the key; exit 1 with one line if the path exists or cannot be written."""
    from spatial_memory_ros.comm.security import write_team_key

    try:
        path = write_team_key(args.path, overwrite=args.force)
    except (ValueError, OSError) as error:
        print(f"spatial-memory keygen: {error}", file=sys.stderr)
        return 1
    print(f"wrote a new team key to {path} (mode 0600); start team_comm with team_key_file:={path}")
    return 0
