# -*- coding: utf-8 -*-
# vim: ft=sls
# The RDMA stack (inbox or DOCA-OFED), IPoIB interfaces, nvidia-peermem after the RDMA stack.
include:
  - .package
  - .config
  - .service
