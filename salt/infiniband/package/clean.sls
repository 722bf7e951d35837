# -*- coding: utf-8 -*-
# vim: ft=sls
# Remove DOCA's source, key and pin (the RDMA packages stay: the node's network may need them).
{%- set tplroot = tpldir.split("/")[0] %}
{%- set sls_config_clean = tplroot ~ ".config.clean" %}
{%- from tplroot ~ "/map.jinja" import mapdata as infiniband with context %}

include:
  - {{ sls_config_clean }}

infiniband-package-clean-file-absent:
  file.absent:
    - names:
      - {{ infiniband.doca.sources_file }}
      - {{ infiniband.doca.keyring }}
      - {{ infiniband.doca.pin_file }}
    - require:
      - sls: {{ sls_config_clean }}
