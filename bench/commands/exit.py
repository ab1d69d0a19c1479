"""Exit status of every ``colorbench`` verb."""

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_WRITE, EXIT_PIPE, EXIT_STOPPED = 0, 1, 2, 3, 141, 143
EXIT_STATUS = {
    EXIT_OK: "success (run: every requested method succeeded)",
    EXIT_FAILED: "finished and everything was written, but a requested method failed (run) or a check failed",
    EXIT_USAGE: "bad argument or input (nothing was run)",
    EXIT_WRITE: "an output file could not be written (e.g. the disk is full); the message names it",
    EXIT_PIPE: "standard output was closed by the reader (e.g. `| head`)",
    EXIT_STOPPED: "run stopped before its end (a torchrun rank lost, or SIGTERM under torchrun): the unfinished cell "
                  "keeps its checkpoint, and rerunning the command resumes it",
}
