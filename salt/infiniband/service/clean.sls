# -*- coding: utf-8 -*-
# vim: ft=sls
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as infiniband with context %}

infiniband-service-clean-service-dead:
  service.dead:
    - name: {{ infiniband.peermem.unit }}
    - enable: false
