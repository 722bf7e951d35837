"""Active diagnostics: ``dcgmi diag``, nvbandwidth and nccl-tests, judged as health findings."""
