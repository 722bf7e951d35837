# -*- coding: utf-8 -*-
# vim: ft=sls
# containerd with the systemd cgroup driver; the NVIDIA Container Toolkit (pinned, held), the
# nvidia runtime through a drop-in, the CDI specification of the GPUs.
include:
  - .package
  - .config
  - .service
