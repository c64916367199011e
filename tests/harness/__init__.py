"""One test harness for every suite that talks to the emulator or runs `discovery`.

- `env`: the environment that points botocore at the emulator (never at AWS);
- `emulator`: starting and resetting the emulator the fixtures share;
- `fleet`: building and editing emulator fleet documents;
- `cli`: `discovery ...` as a subprocess, or in-process where the process is not the point;
- `daemon`: `discovery run` as a subprocess, its log, HTTP API and registry;
- `privileges`: making root respect file modes without leaving the checkout unreadable;
- `wait`: polling with a deadline instead of sleeping.

The conftests only declare fixtures over these; the suite-specific fleets and configs stay with
their suites.
"""
