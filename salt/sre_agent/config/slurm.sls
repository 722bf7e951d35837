# -*- coding: utf-8 -*-
# vim: ft=sls
# Slurm HealthCheckProgram wiring (sre_agent:slurm:healthcheck): the wrapper and the slurm.conf
# fragment to include from slurm.conf (the Slurm formula owns slurm.conf itself).
{%- set tplroot = tpldir.split("/")[0] %}
{%- set sls_config_file = tplroot ~ ".config.file" %}
{%- from tplroot ~ "/map.jinja" import mapdata as sre_agent with context %}
{%- set slurm = sre_agent.slurm %}
{%- if slurm.healthcheck or slurm.prolog or slurm.epilog %}

include:
  - {{ sls_config_file }}
{%- endif %}
{%- if slurm.healthcheck %}

sre_agent-config-slurm-file-managed:
  file.managed:
    - names:
      - {{ slurm.program }}:
        - source: salt://{{ tplroot }}/files/default/sre-slurm-healthcheck.sh.jinja
        - mode: '0755'
      - {{ slurm.conf_fragment }}:
        - source: salt://{{ tplroot }}/files/default/slurm-healthcheck.conf.jinja
        - mode: '0644'
    - template: jinja
    - makedirs: true
    - user: root
    - group: root
    - context:
        sre_agent: {{ sre_agent | json }}
    - require:
      - sls: {{ sls_config_file }}
{%- endif %}

{#- The prolog/epilog hooks around the active diagnostics (sre_agent:slurm:prolog, :epilog). #}
{%- set hooks = [] %}
{%- if slurm.prolog %}{%- do hooks.append(('prolog', slurm.prolog_program)) %}{%- endif %}
{%- if slurm.epilog %}{%- do hooks.append(('epilog', slurm.epilog_program)) %}{%- endif %}
{%- for hook, program in hooks %}

sre_agent-config-slurm-file-managed-{{ hook }}:
  file.managed:
    - name: {{ program }}
    - source: salt://{{ tplroot }}/files/default/sre-slurm-hook.py.jinja
    - mode: '0755'
    - template: jinja
    - makedirs: true
    - user: root
    - group: root
    - context:
        sre_agent: {{ sre_agent | json }}
        hook: {{ hook }}
    - require:
      - sls: {{ sls_config_file }}
{%- endfor %}
{%- if hooks %}

sre_agent-config-slurm-file-managed-hooks-fragment:
  file.managed:
    - name: {{ slurm.hooks_conf_fragment }}
    - source: salt://{{ tplroot }}/files/default/slurm-hooks.conf.jinja
    - mode: '0644'
    - template: jinja
    - makedirs: true
    - user: root
    - group: root
    - context:
        sre_agent: {{ sre_agent | json }}
    - require:
      - sls: {{ sls_config_file }}
{%-   if slurm.hooks_log %}

sre_agent-config-slurm-file-directory-hooks-log:
  file.directory:
    - name: {{ slurm.hooks_log.rsplit('/', 1)[0] or '/' }}
    - user: root
    - group: root
    - mode: '0750'
    - makedirs: true
{%-   endif %}
{%- endif %}
{%- set off = [] %}
{%- if not slurm.prolog %}{%- do off.append(slurm.prolog_program) %}{%- endif %}
{%- if not slurm.epilog %}{%- do off.append(slurm.epilog_program) %}{%- endif %}
{%- if not hooks %}{%- do off.append(slurm.hooks_conf_fragment) %}{%- endif %}

sre_agent-config-slurm-file-absent-hooks-off:
  file.absent:
    - names: {{ off | json }}
