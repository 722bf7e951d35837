# -*- coding: utf-8 -*-
# vim: ft=sls
{%- set tplroot = tpldir.split("/")[0] %}
{%- set sls_service_clean = tplroot ~ ".service.clean" %}
{%- from tplroot ~ "/map.jinja" import mapdata as infiniband with context %}
{%- set ipoib = infiniband.ipoib %}

include:
  - {{ sls_service_clean }}

infiniband-config-clean-file-absent:
  file.absent:
    - names:
      - /etc/systemd/system/{{ infiniband.peermem.unit }}
{%- for iface in ipoib.interfaces %}
      - {{ ipoib.networkd_dir }}/50-ipoib-{{ iface.name }}.network
      - {{ ipoib.ifupdown_dir }}/{{ iface.name }}
{%- endfor %}
    - require:
      - sls: {{ sls_service_clean }}
