# -*- coding: utf-8 -*-
# vim: ft=sls
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as nvidia_fabricmanager with context %}

nvidia_fabricmanager-service-clean-service-dead:
  service.dead:
    - name: {{ nvidia_fabricmanager.service }}
    - enable: false
