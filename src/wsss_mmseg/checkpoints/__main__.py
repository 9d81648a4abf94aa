"""`python -m wsss_mmseg.checkpoints convert OLD NEW`: rewrite an older mmengine checkpoint as plain data.

A module of its own: run as `__main__`, the package's module would be executed a second time
beside the imported `wsss_mmseg.checkpoints` and register `PlainCheckpointHook` again, which
mmengine refuses (`KeyError: 'PlainCheckpointHook is already registered'`): the command every
refusal names crashed at import, `--help` included.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from wsss.errors import WsssError
from wsss_mmseg import checkpoints


def main(argv: list[str] | None = None) -> int:
    """Exit 0 after writing NEW; 2 with one line naming the file when OLD cannot be converted."""
    parser = argparse.ArgumentParser(
        prog=checkpoints.CONVERT_COMMAND.split(" convert")[0], description=checkpoints.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser("convert", help="rewrite an older mmengine checkpoint as plain data")
    convert.add_argument("source", type=Path, help="the checkpoint written by an earlier version (OLD)")
    convert.add_argument("destination", type=Path, help="where the plain-data checkpoint goes (NEW)")
    args = parser.parse_args(argv)
    try:
        written = checkpoints.convert_legacy_checkpoint(args.source, args.destination)
    except WsssError as error:  # CheckpointError naming OLD; ArtifactWriteError naming NEW
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
