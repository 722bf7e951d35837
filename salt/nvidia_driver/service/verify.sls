# -*- coding: utf-8 -*-
# vim: ft=sls
# Every GPU answers (nvidia-smi or NVML) on the expected driver, with persistence mode on while
# nvidia-persistenced should run. Read-only: it changes nothing, and fails with what it found.
{%- set tplroot = tpldir.split("/")[0] %}
{%- set sls_service_running = tplroot ~ ".service.running" %}
{%- set sls_config_file = tplroot ~ ".config.file" %}
{%- from tplroot ~ "/map.jinja" import mapdata as nvidia_driver with context %}

{%- if nvidia_driver.verify %}
{%-   set expect = nvidia_driver.version or (nvidia_driver.branch ~ ".") %}
{%-   set persistence = nvidia_driver.manage_service and nvidia_driver.persistenced_state == "started" %}
{%-   set check = [nvidia_driver.python, nvidia_driver.verify_script,
                   "--method", nvidia_driver.verify_method,
                   "--expect", expect,
                   "--count", nvidia_driver.verify_gpu_count | string]
                  + (["--persistence"] if persistence else []) %}

include:
  - {{ sls_service_running }}
  - {{ sls_config_file }}

nvidia_driver-service-verify-cmd-run:
  cmd.run:
    # The check's own message (stderr) says what it found; this only makes the state fail.
    - name: {{ check | join(" ") }}
    - unless: {{ (check + ["--silent"]) | join(" ") }}
    - require:
{%-   if nvidia_driver.install_packages and (nvidia_driver.load_module or nvidia_driver.manage_service) %}
      {#- Only then does service.running hold a state: a requisite on an empty sls fails. #}
      - sls: {{ sls_service_running }}
{%-   endif %}
      - sls: {{ sls_config_file }}
{%- endif %}
