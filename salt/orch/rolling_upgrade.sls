{#- Orchestration: upgrade the NVIDIA driver a batch of minions at a time (playbooks/rolling_upgrade.yml's
    twin). Per minion of a batch, each step requiring the one before:

      1. drain its Slurm node with our reason (sre_remediate.drain: the remediation engine on the
         master, with its budget, cooldown, owned reason prefix and audit log);
      2. wait until its jobs are gone (sre_remediate.wait_drained);
      3. the nvidia_driver formula at the target version/branch (salt.state);
      4. when reboot is on and step 3 changed the node: reboot it and wait for its minion to
         start again;
      5. the health gate and resume (sre_remediate.resume: a fresh gpu.health run on that minion,
         then Remediator.try_resume, which resumes only our drain and only on a healthy report).

    Every step of the next batch requires step 5 of every minion of this one: a node that fails
    any step stays as it is (drained with our reason once step 1 ran) and no later batch starts.

      salt-run state.orchestrate orch.rolling_upgrade pillar='rolling_upgrade:
        {targets: [gpu-node-01, gpu-node-02], batch: 1, version: "535.309.01"}'

    Pillar rolling_upgrade (docs/salt.md#rolling-driver-upgrade):
      targets         minion ids, upgraded in this order (required)
      batch           minions per batch, or "N%" of the targets (default 1)
      version/branch  the target driver (nvidia_driver:version / :branch; unset: the pillar's)
      reason          drain reason after the sre: prefix (default "rolling upgrade: NVIDIA driver <target>")
      reboot          reboot a node the upgrade changed (default true); reboot_timeout (1200 s)
      drain_timeout   seconds to wait for a node's jobs to end (3600); drain_poll (15)
      health          gpu.health arguments for the gate (profile, config, timeout, replay)
      nvidia_driver   more pillar for the nvidia_driver formula on the upgraded minions
      slo_gate        optional first step: `sre slo gate` on the master, before any drain;
                      specs (a file or a list, required), store or prometheus (one of them),
                      min_budget (10), command (sre). A paging SLO, a budget below min_budget
                      or a source that cannot be read (it fails closed) stops everything.
#}
{%- set ru = salt['pillar.get']('rolling_upgrade', {}) %}
{%- set targets = ru.get('targets') or [] %}
{%- if targets is string or targets is mapping or not targets %}
{{-   raise("rolling_upgrade: pillar rolling_upgrade:targets must be a non-empty list of minion ids") }}
{%- endif %}
{%- set batch_spec = ru.get('batch', 1) | string %}
{%- if batch_spec is match('^[0-9]+%$') %}
{%-   set batch = [1, (targets | length * (batch_spec[:-1] | int) / 100) | round(0, 'ceil') | int] | max %}
{%- elif batch_spec is match('^[0-9]+$') and batch_spec | int > 0 %}
{%-   set batch = batch_spec | int %}
{%- else %}
{{-   raise("rolling_upgrade: pillar rolling_upgrade:batch must be a positive number or N%, not " ~ batch_spec | json) }}
{%- endif %}
{%- set driver = dict(ru.get('nvidia_driver') or {}) %}
{%- if ru.get('version') %}{%- do driver.update({'version': ru.version | string}) %}{%- endif %}
{%- if ru.get('branch') %}{%- do driver.update({'branch': ru.branch | string}) %}{%- endif %}
{%- set target_text = ru.get('version') or ((ru.get('branch') or salt['pillar.get']('nvidia_driver:branch', '?')) ~ '.x') %}
{%- set reason = ru.get('reason') or ('rolling upgrade: NVIDIA driver ' ~ target_text) %}
{%- set reboot = ru.get('reboot', true) %}
{%- set previous = [] %}
{%- set gate = ru.get('slo_gate') %}
{%- if gate %}
{%-   set specs = [gate.specs] if gate.get('specs') is string else (gate.get('specs') or []) %}
{%-   set sources = [] %}
{%-   if gate.get('store') %}{%- do sources.extend(['--store', gate.store | string]) %}{%- endif %}
{%-   if gate.get('prometheus') %}{%- do sources.extend(['--prometheus', gate.prometheus | string]) %}{%- endif %}
{%-   if not specs or sources | length != 2 %}
{{-     raise("rolling_upgrade: pillar rolling_upgrade:slo_gate needs specs and exactly one of store and prometheus") }}
{%-   endif %}
{%-   set argv = [gate.get('command', 'sre'), 'slo', 'gate'] + specs + sources
                 + ['--min-budget', gate.get('min_budget', 10) | string] %}

sre-orch-rolling-upgrade-slo-gate-cmd-run:
  # On the master, before any drain; exit 4 (an SLO blocks) or 1 (it cannot decide) fails it.
  cmd.run:
    - name: {{ argv | map('quote') | join(' ') | json }}
    - python_shell: false
{%-   do previous.append('sre-orch-rolling-upgrade-slo-gate-cmd-run') %}
{%- endif %}
{%- for first in range(0, targets | length, batch) %}
{%-   set gates = [] %}
{%-   for minion in targets[first:first + batch] %}
{%-     set id = 'sre-orch-rolling-upgrade-' ~ minion %}

{{ id }}-runner-drain:
  salt.runner:
    - name: sre_remediate.drain
    - minion: {{ minion | json }}
    - reason: {{ reason | json }}
{%-     if previous %}
    - require:
{%-       for step in previous %}
      - {{ 'cmd' if step.endswith('-cmd-run') else 'salt' }}: {{ step }}
{%-       endfor %}
{%-     endif %}

{{ id }}-runner-wait-drained:
  salt.runner:
    - name: sre_remediate.wait_drained
    - minion: {{ minion | json }}
    - timeout: {{ ru.get('drain_timeout', 3600) | int }}
    - poll: {{ ru.get('drain_poll', 15) | int }}
    - require:
      - salt: {{ id }}-runner-drain

{{ id }}-state-nvidia-driver:
  salt.state:
    - tgt: {{ minion | json }}
    - sls: nvidia_driver
    - pillar: {{ {'nvidia_driver': driver} | json }}
    - require:
      - salt: {{ id }}-runner-wait-drained
{%-     if reboot %}

{{ id }}-function-reboot:
  salt.function:
    - name: system.reboot
    - tgt: {{ minion | json }}
    # In a minute, so the minion returns before it goes down.
    - kwarg: {at_time: 1}
    - onchanges:
      - salt: {{ id }}-state-nvidia-driver

{{ id }}-wait-for-event-start:
  salt.wait_for_event:
    - name: salt/minion/{{ minion }}/start
    - id_list: [{{ minion | json }}]
    - timeout: {{ ru.get('reboot_timeout', 1200) | int }}
    - onchanges:
      - salt: {{ id }}-function-reboot
{%-     endif %}

{{ id }}-runner-resume:
  salt.runner:
    - name: sre_remediate.resume
    - minion: {{ minion | json }}
{%-     if ru.get('health') %}
    - fresh_check: {{ ru.health | json }}
{%-     endif %}
    - require:
      - salt: {{ id }}-state-nvidia-driver
{%-     if reboot %}
      - salt: {{ id }}-wait-for-event-start
{%-     endif %}
{%-     do gates.append(id ~ '-runner-resume') %}
{%-   endfor %}
{%-   do previous.clear() %}
{%-   do previous.extend(gates) %}
{%- endfor %}
