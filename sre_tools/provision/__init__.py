"""Drive this repository's Ansible playbooks (validate, remediate, rolling upgrade) and read back
per-host results: the engine behind ``sre ansible``.

``model`` folds ansible-runner's events into per-host outcomes and an exit code (no I/O);
``runner`` checks the inputs, runs the playbook through ansible-runner and keeps its artifacts.
"""
