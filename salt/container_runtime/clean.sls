# -*- coding: utf-8 -*-
# vim: ft=sls
# Remove the NVIDIA runtime and toolkit, in reverse; containerd itself and its main
# configuration stay (other workloads may use them).
include:
  - .service.clean
  - .config.clean
  - .package.clean
