{#- Orchestration: accept new or repaired GPU minions with the active diagnostics
    (playbooks/acceptance.yml's twin). Per minion, each step requiring the one before:

      1. drain its Slurm node with our reason (sre_remediate.drain: the remediation engine on the
         master, with its budget, cooldown, owned reason prefix and audit log); a node already
         drained by sre (the Slurm prolog hook, the engine) is taken as it is, one an operator
         drained is not touched (that step fails);
      2. wait until its jobs are gone (sre_remediate.wait_drained);
      3. sre_remediate.accept: gpu.diag at level 3 or 4 (nvbandwidth and NCCL when asked) and a
         fresh gpu.health on that minion, then Remediator.try_resume with both, which resumes
         only our drain and only when both pass. A failing node stays drained with our reason;
         the diagnostic's failure is in the state's comment and the audit log.

    Minions are tested one after the other. A failing minion does not stop the others unless
    stop_on_failure is true (then every minion's first step requires the previous one's last).

      salt-run state.orchestrate orch.acceptance pillar='acceptance:
        {targets: [gpu-node-07], level: 3, nvbandwidth: true, nccl: true}'

    Pillar acceptance (docs/salt.md#acceptance):
      targets          minion ids (required)
      level            DCGM run level, 3 or 4 (default 3)
      nvbandwidth      also run nvbandwidth (default false)
      nccl             also run all_reduce_perf (default false)
      diag             more gpu.diag arguments: profile, site, store, replay, timeout (seconds
                       for the whole run; default 3600 for level 3, 14400 for level 4)
      health           gpu.health arguments for the fresh report (profile, config, timeout, replay)
      reason           drain reason after the sre: prefix (default "acceptance: DCGM level N, ...")
      drain_timeout    seconds to wait for a node's jobs to end (3600); drain_poll (15)
      stop_on_failure  stop at the first minion that fails (default false)
#}
{%- set acc = salt['pillar.get']('acceptance', {}) %}
{%- set targets = acc.get('targets') or [] %}
{%- if targets is string or targets is mapping or not targets %}
{{-   raise("acceptance: pillar acceptance:targets must be a non-empty list of minion ids") }}
{%- endif %}
{%- set level = acc.get('level', 3) | string %}
{%- if level not in ['3', '4'] %}
{{-   raise("acceptance: pillar acceptance:level must be 3 or 4 (levels 1 and 2 are the Slurm prolog and epilog's), not " ~ level | json) }}
{%- endif %}
{%- set diag = acc.get('diag') or {} %}
{%- if diag is not mapping %}
{{-   raise("acceptance: pillar acceptance:diag must be a mapping of gpu.diag arguments") }}
{%- endif %}
{%- set what = ['DCGM level ' ~ level] %}
{%- if acc.get('nvbandwidth') %}{%- do what.append('nvbandwidth') %}{%- endif %}
{%- if acc.get('nccl') %}{%- do what.append('NCCL') %}{%- endif %}
{%- set reason = acc.get('reason') or ('acceptance: ' ~ what | join(', ')) %}
{%- set previous = [] %}
{%- for minion in targets %}
{%-   set id = 'sre-orch-acceptance-' ~ minion %}

{{ id }}-runner-drain:
  salt.runner:
    - name: sre_remediate.drain
    - minion: {{ minion | json }}
    - reason: {{ reason | json }}
{%-   if previous and acc.get('stop_on_failure') %}
    - require:
      - salt: {{ previous | last }}
{%-   endif %}

{{ id }}-runner-wait-drained:
  salt.runner:
    - name: sre_remediate.wait_drained
    - minion: {{ minion | json }}
    - timeout: {{ acc.get('drain_timeout', 3600) | int }}
    - poll: {{ acc.get('drain_poll', 15) | int }}
    - require:
      - salt: {{ id }}-runner-drain

{{ id }}-runner-accept:
  salt.runner:
    - name: sre_remediate.accept
    - minion: {{ minion | json }}
    - level: {{ level | int }}
    - nvbandwidth: {{ acc.get('nvbandwidth', false) | json }}
    - nccl: {{ acc.get('nccl', false) | json }}
{%-   if diag %}
    - diag: {{ diag | json }}
{%-   endif %}
{%-   if acc.get('health') %}
    - fresh_check: {{ acc.health | json }}
{%-   endif %}
    - require:
      - salt: {{ id }}-runner-wait-drained
{%-   do previous.append(id ~ '-runner-accept') %}
{%- endfor %}
