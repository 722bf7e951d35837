# -*- coding: utf-8 -*-
# vim: ft=sls
# The driver packages at the pinned version (<version>-* on apt, <version>* on dnf; the branch's
# newest when no version is set), held (dpkg hold, dnf versionlock) or released; then check that
# DKMS really built the module. install_packages: false skips all of it.
{%- set tplroot = tpldir.split("/")[0] %}
{%- set sls_repo = tplroot ~ ".package.repo" %}
{%- from tplroot ~ "/map.jinja" import mapdata as nvidia_driver with context %}
{%- set d = nvidia_driver.derived %}
{%- set family = grains.os_family %}
{%- set suffix = ("-*" if family == "Debian" else "*") if nvidia_driver.version else "" %}

include:
  - {{ sls_repo }}

{%- if nvidia_driver.install_packages %}
{%-   if family == "RedHat" and (nvidia_driver.hold or nvidia_driver.pin) %}

nvidia_driver-package-install-pkg-installed-versionlock:
  pkg.installed:
    - name: {{ nvidia_driver.dnf.versionlock_pkg }}
{%-   endif %}

nvidia_driver-package-install-pkg-installed:
  pkg.installed:
    - pkgs:
{%-   for name in d.versioned_packages %}
{%-     if nvidia_driver.version %}
      - {{ name }}: '{{ nvidia_driver.version ~ suffix }}'
{%-     else %}
      - {{ name }}
{%-     endif %}
{%-   endfor %}
    - hold: {{ nvidia_driver.hold or (family == "RedHat" and nvidia_driver.pin) }}
    # A new pinned version replaces held packages: release, upgrade, hold again.
    - update_holds: true
{%-   if family == "Debian" %}
    - install_recommends: false
{%-   endif %}
    - require:
      - sls: {{ sls_repo }}
{%-   if d.unversioned_packages or nvidia_driver.extra_packages %}

nvidia_driver-package-install-pkg-installed-unversioned:
  pkg.installed:
    - pkgs: {{ (d.unversioned_packages + nvidia_driver.extra_packages) | json }}
{%-     if family == "Debian" %}
    - install_recommends: false
{%-     endif %}
    - require:
      - pkg: nvidia_driver-package-install-pkg-installed
{%-   endif %}
{%-   if nvidia_driver.dkms %}

nvidia_driver-package-install-cmd-run-dkms:
  cmd.run:
    # Fails (and says where to look) unless DKMS reports a built NVIDIA module.
    - name: >-
        dkms status >&2; echo "nvidia_driver: DKMS reports no built NVIDIA module: check that
        headers for the target kernel are installed (gpu_base:kernel_headers) and read
        /var/lib/dkms/*/*/build/make.log" >&2; exit 1
    - unless: >-
        dkms status | grep -Eq '^nvidia[^:]*: installed'
    - require:
      - pkg: nvidia_driver-package-install-pkg-installed
{%-   endif %}
{%- endif %}
