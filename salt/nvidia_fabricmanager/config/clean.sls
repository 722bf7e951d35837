# -*- coding: utf-8 -*-
# vim: ft=sls
# The configuration file belongs to the package: removing the package removes it.
{%- set tplroot = tpldir.split("/")[0] %}
{%- set sls_service_clean = tplroot ~ ".service.clean" %}

include:
  - {{ sls_service_clean }}
