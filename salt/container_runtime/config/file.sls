# -*- coding: utf-8 -*-
# vim: ft=sls
# containerd's main configuration (SystemdCgroup, imports of conf.d/*.toml; checked with
# `containerd config dump` before it replaces the old file), the nvidia runtime drop-in, and
# the CDI specification kept equal to what `nvidia-ctk cdi generate` prints.
{%- set tplroot = tpldir.split("/")[0] %}
{%- set sls_package_install = tplroot ~ ".package.install" %}
{%- from tplroot ~ "/map.jinja" import mapdata as container_runtime with context %}
{%- set d = container_runtime.derived %}

include:
  - {{ sls_package_install }}

container_runtime-config-file-file-directory:
  file.directory:
    - name: {{ container_runtime.containerd_dropin_dir }}
    - user: root
    - group: root
    - mode: '0755'
    - makedirs: true

container_runtime-config-file-file-managed-containerd:
  file.managed:
    - name: {{ container_runtime.containerd_config }}
    - source: salt://{{ tplroot }}/files/default/config.toml.jinja
    - template: jinja
    - user: root
    - group: root
    - mode: '0644'
    - context:
        dropin_dir: {{ container_runtime.containerd_dropin_dir }}
        systemd_cgroup: {{ container_runtime.systemd_cgroup }}
{%- if container_runtime.containerd_install %}
    # --config is containerd's global flag (before the subcommand); check_cmd appends the
    # candidate file's name, hence the sh -c wrapper ($1 is that name).
    - check_cmd: sh -c 'containerd --config "$1" config dump >/dev/null' containerd-config-check
{%- endif %}
    - require:
      - sls: {{ sls_package_install }}
      - file: container_runtime-config-file-file-directory
{%- if container_runtime.nvidia %}

container_runtime-config-file-file-managed-nvidia:
  file.managed:
    - name: {{ container_runtime.nvidia_dropin }}
    - source: salt://{{ tplroot }}/files/default/50-nvidia.toml.jinja
    - template: jinja
    - user: root
    - group: root
    - mode: '0644'
    - context:
        default_runtime: {{ d.default_runtime }}
        systemd_cgroup: {{ container_runtime.systemd_cgroup }}
        binary: {{ container_runtime.nvidia_runtime_binary }}
    - require:
      - file: container_runtime-config-file-file-directory
{%- else %}

container_runtime-config-file-file-absent-nvidia:
  file.absent:
    - name: {{ container_runtime.nvidia_dropin }}
{%- endif %}
{%- if container_runtime.nvidia and container_runtime.cdi %}

container_runtime-config-file-cmd-run-cdi:
  cmd.run:
    # Write the spec only when what nvidia-ctk prints now differs from the file.
    - name: >-
        mkdir -p {{ container_runtime.cdi_spec.rsplit("/", 1)[0] }} &&
        {{ container_runtime.nvidia_ctk }} cdi generate > {{ container_runtime.cdi_spec }}.new &&
        mv {{ container_runtime.cdi_spec }}.new {{ container_runtime.cdi_spec }}
    - unless: >-
        {{ container_runtime.nvidia_ctk }} cdi generate | cmp -s - {{ container_runtime.cdi_spec }}
    - require:
      - sls: {{ sls_package_install }}
{%- else %}

container_runtime-config-file-file-absent-cdi:
  file.absent:
    - name: {{ container_runtime.cdi_spec }}
{%- endif %}
