# -*- coding: utf-8 -*-
# vim: ft=sls
{%- set tplroot = tpldir.split("/")[0] %}
{%- set sls_service_clean = tplroot ~ ".service.clean" %}
{%- from tplroot ~ "/map.jinja" import mapdata as gpu_monitoring with context %}

include:
  - {{ sls_service_clean }}

gpu_monitoring-config-clean-file-absent:
  file.absent:
    - names:
      - /etc/systemd/system/node_exporter.service
      - /etc/systemd/system/dcgm-exporter.service
      - /etc/systemd/system/sre-exporter.service
      - {{ gpu_monitoring.sre_exporter.secrets_dir }}
      - {{ gpu_monitoring.grafana.dashboards_dir }}
      - {{ gpu_monitoring.grafana.provisioning_dir }}/sre-tools.yml
      - {{ gpu_monitoring.alertmanager.sd_file }}
{%- for job in ["node", "dcgm", "sre"] %}
      - {{ gpu_monitoring.file_sd.dir }}/{{ job }}-{{ grains.id }}.json
{%- endfor %}
    - require:
      - sls: {{ sls_service_clean }}
