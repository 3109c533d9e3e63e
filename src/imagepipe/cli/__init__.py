"""The command line: the parser (arguments), the entry point (main) and one module per verb (verbs)."""
