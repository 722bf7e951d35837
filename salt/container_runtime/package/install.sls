# -*- coding: utf-8 -*-
# vim: ft=sls
# containerd from the distribution; the four toolkit packages at one version (<version>-*),
# held or released.
{%- set tplroot = tpldir.split("/")[0] %}
{%- set sls_repo = tplroot ~ ".package.repo" %}
{%- from tplroot ~ "/map.jinja" import mapdata as container_runtime with context %}

include:
  - {{ sls_repo }}
{%- if container_runtime.containerd_install %}

container_runtime-package-install-pkg-installed-containerd:
  pkg.installed:
    - name: {{ container_runtime.containerd_package }}
    - install_recommends: false
    - require:
      - sls: {{ sls_repo }}
{%- endif %}
{%- if container_runtime.nvidia %}

container_runtime-package-install-pkg-installed:
  pkg.installed:
    - pkgs:
{%-   for name in container_runtime.nvidia_packages %}
      - {{ name }}: '{{ container_runtime.nvidia_container_toolkit_version }}-*'
{%-   endfor %}
    - hold: {{ container_runtime.nvidia_hold }}
    # A new pinned version replaces held packages: release, upgrade, hold again.
    - update_holds: true
    - install_recommends: false
    - require:
      - sls: {{ sls_repo }}
{%- endif %}
