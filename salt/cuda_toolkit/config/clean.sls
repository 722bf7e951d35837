# -*- coding: utf-8 -*-
# vim: ft=sls
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as cuda_toolkit with context %}

cuda_toolkit-config-clean-file-absent:
  file.absent:
    - name: {{ cuda_toolkit.profile_file }}
