# -*- coding: utf-8 -*-
# vim: ft=sls
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as nvidia_mig with context %}

nvidia_mig-service-clean-file-absent:
  file.absent:
    - name: {{ nvidia_mig.dropin }}
