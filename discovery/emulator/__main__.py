"""``python -m discovery.emulator``."""

from discovery.emulator.cli import main

raise SystemExit(main())
