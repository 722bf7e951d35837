# -*- coding: utf-8 -*-
# vim: ft=sls
# systemd-networkd for the IPoIB files; the nvidia-peermem unit enabled (and started: loaded).
{%- set tplroot = tpldir.split("/")[0] %}
{%- set sls_config_file = tplroot ~ ".config.file" %}
{%- from tplroot ~ "/map.jinja" import mapdata as infiniband with context %}
{%- set ipoib = infiniband.ipoib %}
{%- set peermem = infiniband.peermem %}

include:
  - {{ sls_config_file }}
{%- if ipoib.interfaces and ipoib.backend == "networkd" and ipoib.manage_service %}

infiniband-service-running-service-running-networkd:
  service.running:
    - name: systemd-networkd.service
    - enable: true
    - reload: true
    - watch:
      - file: infiniband-config-file-file-managed-ipoib
{%- endif %}
{%- if peermem.enable %}

infiniband-service-running-service-{{ "running" if peermem.load else "enabled" }}-peermem:
  service.{{ "running" if peermem.load else "enabled" }}:
    - name: {{ peermem.unit }}
{%-   if peermem.load %}
    - enable: true
{%-   endif %}
    - require:
      - sls: {{ sls_config_file }}
{%- endif %}
