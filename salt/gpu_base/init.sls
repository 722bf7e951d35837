# -*- coding: utf-8 -*-
# vim: ft=sls
# What every GPU node needs before the driver (roles/gpu_base's twin): kernel headers for DKMS,
# nouveau blacklisted (initramfs rebuilt), unattended upgrades kept off the GPU stack, memlock.
include:
  - .package
  - .config
