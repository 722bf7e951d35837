# -*- coding: utf-8 -*-
# vim: ft=sls
{%- set tplroot = tpldir.split("/")[0] %}
{%- set sls_config_clean = tplroot ~ ".config.clean" %}
{%- from tplroot ~ "/map.jinja" import mapdata as cuda_toolkit with context %}

include:
  - {{ sls_config_clean }}

cuda_toolkit-package-clean-pkg-removed:
  pkg.removed:
    - pkgs: {{ cuda_toolkit.derived.packages | json }}
    - require:
      - sls: {{ sls_config_clean }}
