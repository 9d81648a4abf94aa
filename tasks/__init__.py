"""Stage entries: one `run_<stage>(params, layout, ...)` per stage (attributes, keys, core calls, records).

`runtime.py` holds the Prefect glue, `command.py` the stage command line, `locking.py` the locks.
"""
