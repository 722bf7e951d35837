# -*- coding: utf-8 -*-
# vim: ft=sls
# node_exporter, DCGM and dcgm-exporter, the sre exporter, Prometheus file_sd fragments.
include:
  - .package
  - .config
  - .service
