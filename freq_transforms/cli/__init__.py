"""The command line: ``python -m freq_transforms <command>``: dispatch (:mod:`.main`), the commands
(:mod:`.commands`, :mod:`.model_commands`) and the strict fire wrapper that reads their options (:mod:`.fire`)."""
