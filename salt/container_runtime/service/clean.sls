# -*- coding: utf-8 -*-
# vim: ft=sls
# containerd keeps running (other workloads may use it): config.clean restarts it once the
# nvidia drop-in is gone.
container_runtime-service-clean-test-nop:
  test.nop: []
