# -*- coding: utf-8 -*-
# vim: ft=sls
# The NVIDIA datacenter driver (roles/nvidia_driver's twin): package source, pin, packages and
# hold; module parameters and the nvidia-persistenced drop-in; the service and the GPU check.
# Apply gpu_base first (kernel headers, nouveau blacklist), as top.sls does.
include:
  - .package
  - .config
  - .service
