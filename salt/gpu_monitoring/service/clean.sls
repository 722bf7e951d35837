# -*- coding: utf-8 -*-
# vim: ft=sls
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as gpu_monitoring with context %}

gpu_monitoring-service-clean-service-dead:
  service.dead:
    - names:
      - node_exporter.service
      - dcgm-exporter.service
      - sre-exporter.service
    - enable: false
