# -*- coding: utf-8 -*-
# vim: ft=sls
# NVIDIA Fabric Manager on NVSwitch systems, at the driver's exact version: the package (from
# NVIDIA's CUDA repository, pinned and held), its configuration keys, the service.
include:
  - .package
  - .config
  - .service
