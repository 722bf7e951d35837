# -*- coding: utf-8 -*-
# vim: ft=sls
# The exporters and nv-hostengine, restarted when their configuration or unit changes. Salt's
# systemd module reloads the daemon by itself when a unit file changed.
{%- set tplroot = tpldir.split("/")[0] %}
{%- set sls_package_install = tplroot ~ ".package.install" %}
{%- set sls_config_file = tplroot ~ ".config.file" %}
{%- from tplroot ~ "/map.jinja" import mapdata as gpu_monitoring with context %}
{%- set ne = gpu_monitoring.node_exporter %}
{%- set sre = gpu_monitoring.sre_exporter %}

include:
  - {{ sls_package_install }}
  - {{ sls_config_file }}
{%- if sre.enabled %}
  # The sre exporter runs from the sre_agent formula's virtualenv.
  - sre_agent.package.install
{%- endif %}
{%- if ne.enabled %}

gpu_monitoring-service-running-service-running-node-exporter:
  service.running:
    - name: {{ ne.package_service if ne.source == "package" else "node_exporter.service" }}
    - enable: true
    - watch:
      - sls: {{ sls_package_install }}
      - sls: {{ sls_config_file }}
{%- endif %}
{%- if gpu_monitoring.dcgm.enabled %}

gpu_monitoring-service-running-service-dcgm:
  service.{{ "running" if gpu_monitoring.dcgm.service_running else "dead" }}:
    - name: nvidia-dcgm.service
    - enable: true
    - require:
      - sls: {{ sls_package_install }}
{%-   if gpu_monitoring.dcgm_exporter.enabled %}

gpu_monitoring-service-running-service-dcgm-exporter:
  service.{{ "running" if gpu_monitoring.dcgm_exporter.service_running else "dead" }}:
    - name: dcgm-exporter.service
    - enable: true
    - watch:
      - sls: {{ sls_config_file }}
    - require:
      - service: gpu_monitoring-service-running-service-dcgm
{%-   endif %}
{%- endif %}
{%- if sre.enabled %}

gpu_monitoring-service-running-service-sre-exporter:
  service.{{ "running" if sre.service_running else "dead" }}:
    - name: sre-exporter.service
    - enable: true
    - watch:
      - sls: {{ sls_config_file }}
    - require:
      - sls: sre_agent.package.install
{%- endif %}
