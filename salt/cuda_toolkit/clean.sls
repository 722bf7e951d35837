# -*- coding: utf-8 -*-
# vim: ft=sls
# Remove the toolkits and the profile. The CUDA repository stays (nvidia_driver and
# nvidia_fabricmanager may use it).
include:
  - .config.clean
  - .package.clean
