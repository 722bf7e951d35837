# -*- coding: utf-8 -*-
# vim: ft=sls
# nvidia-mig-manager, the MIG layouts and hooks, the boot-time selection, apply on drained nodes.
include:
  - .package
  - .config
  - .service
