# -*- coding: utf-8 -*-
# vim: ft=sls
# Load the module when nothing stands in the way (installed for this kernel, nouveau not
# loaded; otherwise the node needs a reboot, which Salt leaves to a draining orchestration),
# then nvidia-persistenced in its enabled and running state, restarted when its drop-in changes.
{%- set tplroot = tpldir.split("/")[0] %}
{%- set sls_package_install = tplroot ~ ".package.install" %}
{%- set sls_config_file = tplroot ~ ".config.file" %}
{%- from tplroot ~ "/map.jinja" import mapdata as nvidia_driver with context %}
{%- set d = nvidia_driver.derived %}

include:
  - {{ sls_package_install }}
  - {{ sls_config_file }}

{%- if nvidia_driver.install_packages and nvidia_driver.load_module %}

nvidia_driver-service-running-kmod-present:
  kmod.present:
    - name: {{ d.kernel_module }}
    - onlyif: modinfo {{ d.kernel_module }}
    - unless: test -d /sys/module/nouveau
    - require:
      - sls: {{ sls_package_install }}
      - sls: {{ sls_config_file }}
{%- endif %}

{%- if nvidia_driver.install_packages and nvidia_driver.manage_service %}

nvidia_driver-service-running-service-{{ "running" if nvidia_driver.persistenced_state == "started" else "dead" }}:
  service.{{ "running" if nvidia_driver.persistenced_state == "started" else "dead" }}:
    - name: {{ nvidia_driver.persistenced.service }}
    - enable: {{ nvidia_driver.persistenced_enabled }}
{%-   if nvidia_driver.persistenced_state == "started" %}
    - watch:
      - sls: {{ sls_config_file }}
{%-   endif %}
    - require:
      - sls: {{ sls_package_install }}
      - sls: {{ sls_config_file }}
{%- endif %}
