# -*- coding: utf-8 -*-
# vim: ft=sls
# NVIDIA's nvidia-mig-manager .deb, checked against its sha256, installed and held.
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as nvidia_mig with context %}
{%- set manager = nvidia_mig.manager %}
{%- set deb = manager.deb_dir ~ "/" ~ manager.deb_url.split("/")[-1] %}
{%- if manager.install %}

nvidia_mig-package-install-file-managed:
  file.managed:
    - name: {{ deb }}
    - source: {{ manager.deb_url }}
    - source_hash: {{ manager.deb_hash }}
    - makedirs: true
    - mode: '0644'

nvidia_mig-package-install-pkg-installed:
  pkg.installed:
    - sources:
      - nvidia-mig-manager: {{ deb }}
    - hold: {{ manager.hold }}
    - require:
      - file: nvidia_mig-package-install-file-managed
{%- endif %}
