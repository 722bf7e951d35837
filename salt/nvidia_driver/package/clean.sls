# -*- coding: utf-8 -*-
# vim: ft=sls
# Release the hold and remove the driver packages, then the pin and the package source.
{%- set tplroot = tpldir.split("/")[0] %}
{%- set sls_config_clean = tplroot ~ ".config.clean" %}
{%- from tplroot ~ "/map.jinja" import mapdata as nvidia_driver with context %}
{%- set d = nvidia_driver.derived %}
{%- set cuda = nvidia_driver.cuda_repo %}
{%- set packages = d.versioned_packages + d.unversioned_packages + nvidia_driver.extra_packages %}

include:
  - {{ sls_config_clean }}

{%- if grains.os_family == "Debian" %}

nvidia_driver-package-clean-pkg-unheld:
  pkg.unheld:
    - pkgs: {{ d.versioned_packages | json }}
    - require:
      - sls: {{ sls_config_clean }}
{%- endif %}

nvidia_driver-package-clean-pkg-removed:
  pkg.removed:
    - pkgs: {{ packages | json }}
    - require:
      - sls: {{ sls_config_clean }}
{%- if grains.os_family == "Debian" %}
      - pkg: nvidia_driver-package-clean-pkg-unheld
{%- endif %}

nvidia_driver-package-clean-file-absent:
  file.absent:
    - names:
      - {{ nvidia_driver.pin_file }}
      - {{ nvidia_driver.debian.sources_file }}
      - {{ cuda.sources_file }}
      - {{ cuda.keyring }}
      - /var/cache/sre-tools/nvidia-driver
    - require:
      - pkg: nvidia_driver-package-clean-pkg-removed
{%- if grains.os_family == "Debian" %}

nvidia_driver-package-clean-cmd-run-apt-update:
  cmd.run:
    - name: apt-get update
    - onchanges:
      - file: nvidia_driver-package-clean-file-absent
{%- endif %}
