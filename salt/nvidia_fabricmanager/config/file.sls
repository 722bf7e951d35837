# -*- coding: utf-8 -*-
# vim: ft=sls
# The pillar's KEY: value settings in Fabric Manager's configuration file (others keep the
# package's values).
{%- set tplroot = tpldir.split("/")[0] %}
{%- set sls_package_install = tplroot ~ ".package.install" %}
{%- from tplroot ~ "/map.jinja" import mapdata as nvidia_fabricmanager with context %}

include:
  - {{ sls_package_install }}
{%- if nvidia_fabricmanager.derived.wanted and nvidia_fabricmanager.config %}

nvidia_fabricmanager-config-file-file-keyvalue:
  file.keyvalue:
    - name: {{ nvidia_fabricmanager.config_file }}
    - key_values:
{%-   for key, value in nvidia_fabricmanager.config | dictsort %}
        {{ key }}: '{{ value | int if value is sameas true or value is sameas false else value }}'
{%-   endfor %}
    - separator: '='
    - append_if_not_found: true
    # The package ships the file; test=True on a fresh node has not installed it yet.
    - onlyif: test -f {{ nvidia_fabricmanager.config_file }}
    - require:
      - sls: {{ sls_package_install }}
{%- endif %}
