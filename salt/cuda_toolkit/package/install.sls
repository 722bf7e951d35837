# -*- coding: utf-8 -*-
# vim: ft=sls
# cuda-toolkit-<major>-<minor> for each version (or nvidia-cuda-toolkit), plus extra packages.
{%- set tplroot = tpldir.split("/")[0] %}
{%- set sls_repo = tplroot ~ ".package.repo" %}
{%- from tplroot ~ "/map.jinja" import mapdata as cuda_toolkit with context %}

include:
  - {{ sls_repo }}
{%- if cuda_toolkit.install_packages %}

cuda_toolkit-package-install-pkg-installed:
  pkg.installed:
    - pkgs: {{ cuda_toolkit.derived.packages | json }}
    - install_recommends: false
    - require:
      - sls: {{ sls_repo }}
{%- endif %}
