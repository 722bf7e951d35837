# -*- coding: utf-8 -*-
# vim: ft=sls
# nvidia-fabricmanager.service enabled and in its running state, restarted when the package or
# its configuration changed.
{%- set tplroot = tpldir.split("/")[0] %}
{%- set sls_package_install = tplroot ~ ".package.install" %}
{%- set sls_config_file = tplroot ~ ".config.file" %}
{%- from tplroot ~ "/map.jinja" import mapdata as nvidia_fabricmanager with context %}

include:
  - {{ sls_package_install }}
  - {{ sls_config_file }}
{%- if nvidia_fabricmanager.derived.wanted and nvidia_fabricmanager.manage_service %}

nvidia_fabricmanager-service-running-service-{{ "running" if nvidia_fabricmanager.service_state == "started" else "dead" }}:
  service.{{ "running" if nvidia_fabricmanager.service_state == "started" else "dead" }}:
    - name: {{ nvidia_fabricmanager.service }}
    - enable: {{ nvidia_fabricmanager.service_enabled }}
{%-   if nvidia_fabricmanager.service_state == "started" %}
    - watch:
      - sls: {{ sls_package_install }}
      - sls: {{ sls_config_file }}
{%-   else %}
    - require:
      - sls: {{ sls_package_install }}
{%-   endif %}
{%- endif %}
