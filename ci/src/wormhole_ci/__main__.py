"""Entry point for `python -m wormhole_ci`."""

from wormhole_ci.cli import main

raise SystemExit(main())
