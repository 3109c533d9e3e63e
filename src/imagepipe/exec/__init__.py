"""Running programs: the one runner, the argv builders (cmdline), processes, cancellation, retries, exit codes
and parsers of tools' output."""
