# -*- coding: utf-8 -*-
# vim: ft=sls
# Remove the upstream binary and the pins (packages stay: other tools may use them).
{%- set tplroot = tpldir.split("/")[0] %}
{%- set sls_config_clean = tplroot ~ ".config.clean" %}
{%- from tplroot ~ "/map.jinja" import mapdata as gpu_monitoring with context %}

include:
  - {{ sls_config_clean }}

gpu_monitoring-package-clean-file-absent:
  file.absent:
    - names:
      - {{ gpu_monitoring.node_exporter.binary }}
      - {{ gpu_monitoring.node_exporter.archive_dir }}
      - {{ gpu_monitoring.pin_file }}
      - {{ gpu_monitoring.node_exporter.pin_file }}
    - require:
      - sls: {{ sls_config_clean }}
