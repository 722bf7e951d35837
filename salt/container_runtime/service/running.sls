# -*- coding: utf-8 -*-
# vim: ft=sls
# containerd enabled and in its running state, restarted when its configuration or the toolkit
# changed.
{%- set tplroot = tpldir.split("/")[0] %}
{%- set sls_package_install = tplroot ~ ".package.install" %}
{%- set sls_config_file = tplroot ~ ".config.file" %}
{%- from tplroot ~ "/map.jinja" import mapdata as container_runtime with context %}
{%- set running = container_runtime.containerd_state == "started" %}

include:
  - {{ sls_package_install }}
  - {{ sls_config_file }}
{%- if container_runtime.manage_service %}

container_runtime-service-running-service-{{ "running" if running else "dead" }}:
  service.{{ "running" if running else "dead" }}:
    - name: containerd.service
    - enable: {{ container_runtime.containerd_enabled }}
{%-   if running %}
    - watch:
      - sls: {{ sls_package_install }}
      - sls: {{ sls_config_file }}
{%-   else %}
    - require:
      - sls: {{ sls_package_install }}
{%-   endif %}
{%- endif %}
