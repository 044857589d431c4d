"""What the task runner (`batchapi.run`) and the client agree on, apart from the runner itself.

The client must not import `batchapi.run`: a task runs it as `python3 -m batchapi.run`, and a
module already imported by its package (`import batchapi` → core → run) is run a second time as
`__main__`, with a RuntimeWarning in every task's stderr.
"""

#: Exit code of a task whose result cannot be stored (not JSON, or over 64 KiB); never retried.
RESULT_NOT_JSON_EXIT = 65
#: The line before the traceback a failed task prints to stderr; `TaskFailed.traceback` is what follows the last one.
TRACEBACK_MARKER = "----- batchapi: remote traceback -----"
