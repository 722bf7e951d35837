# -*- coding: utf-8 -*-
# vim: ft=sls
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as gpu_base with context %}
{%- set initramfs = gpu_base.initramfs_packages if gpu_base.rebuild_initramfs else [] %}

gpu_base-package-install-pkg-installed:
  pkg.installed:
    - pkgs: {{ (gpu_base.headers + gpu_base.packages + initramfs) | json }}
{%- if grains.os_family == "Debian" %}
    - install_recommends: false
{%- endif %}
