"""The commands' own code: each module's ``run(args)`` carries out one `evss` command (flags in
:mod:`evss.cli`)."""
