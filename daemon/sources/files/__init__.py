"""The sources for any other CI: tailed log files (``type: log``) and per-run result files
(``type: result_file``), and the rotation-safe tailer under them."""
