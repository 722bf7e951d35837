# -*- coding: utf-8 -*-
# vim: ft=sls
# Fabric Manager at the driver's exact version (<version>-*; the branch's newest when no version
# is known), held or released. Nothing where no NVSwitch was found (install: auto).
{%- set tplroot = tpldir.split("/")[0] %}
{%- set sls_repo = tplroot ~ ".package.repo" %}
{%- from tplroot ~ "/map.jinja" import mapdata as nvidia_fabricmanager with context %}
{%- set d = nvidia_fabricmanager.derived %}

include:
  - {{ sls_repo }}
{%- if d.wanted %}

nvidia_fabricmanager-package-install-pkg-installed:
  pkg.installed:
    - name: {{ d.package }}
{%-   if d.install_version %}
    - version: '{{ d.install_version }}-*'
{%-   endif %}
    - hold: {{ nvidia_fabricmanager.hold }}
    # A new pinned version replaces a held package: release, upgrade, hold again.
    - update_holds: true
    - install_recommends: false
    - require:
      - sls: {{ sls_repo }}
{%- endif %}
