"""GPU node health: checks over the NVML facade, the kernel log and sysfs; one set of findings
that the CLI, the exporter, the Ansible gate and the Salt beacon all show."""
