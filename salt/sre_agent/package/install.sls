# -*- coding: utf-8 -*-
# vim: ft=sls
# sre-tools in its own virtualenv, from the pillar's source: a wheel the master serves (or a
# URL, checksum-verified) or a requirement from a package index.
{%- set tplroot = tpldir.split("/")[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata as sre_agent with context %}
{%- set source = sre_agent.source %}
{%- if source.wheel %}
{%-   set requirement = source.wheel_dir ~ "/" ~ source.wheel.split("/")[-1] %}
{%- else %}
{%-   set requirement = source.requirement %}
{%- endif %}

sre_agent-package-install-pkg-installed:
  pkg.installed:
    - pkgs: {{ sre_agent.pkg.deps | json }}

sre_agent-package-install-cmd-run:
  cmd.run:
    - name: {{ sre_agent.python }} -m venv {{ sre_agent.venv }}
    - creates: {{ sre_agent.venv }}/bin/python

{%- if source.wheel %}

sre_agent-package-install-file-managed:
  file.managed:
    - name: {{ requirement }}
    - source: {{ source.wheel }}
{%-   if source.wheel_hash %}
    - source_hash: {{ source.wheel_hash }}
{%-   elif not source.wheel.startswith("salt://") %}
{{-     raise("sre_agent:source:wheel_hash is required for a wheel URL: set it to sha256=<hex>") }}
{%-   endif %}
    - makedirs: true
    - mode: '0644'
{%- endif %}

sre_agent-package-install-pip-installed:
  pip.installed:
    - name: {{ requirement }}
    - bin_env: {{ sre_agent.venv }}
    - require:
      - cmd: sre_agent-package-install-cmd-run
    # Evaluated when the state runs, after the venv state: always true on a real apply. On a dry
    # run of a fresh node the venv is not there yet and pip.installed cannot dry-run into a
    # missing one ("could not find a pip binary"); the venv state already reports the work.
    - onlyif: test -x {{ sre_agent.venv }}/bin/python
{%- if source.index_url and not source.wheel %}
    - index_url: {{ source.index_url }}
{%- endif %}
{%- if source.extra_index_url and not source.wheel %}
    - extra_index_url: {{ source.extra_index_url }}
{%- endif %}

{%- if sre_agent.install_into_salt %}

sre_agent-package-install-pip-installed-salt:
  pip.installed:
    # No bin_env: Salt's own Python, so that the gpu module and gpu_health beacon import it.
    - name: {{ requirement }}
{%-   if source.index_url and not source.wheel %}
    - index_url: {{ source.index_url }}
{%-   endif %}
{%- endif %}
