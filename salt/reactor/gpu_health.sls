{#- Beacon events from gpu_health: start the remediation orchestration on the master.
    The event is passed as pillar data (structured, never rendered into a command); the runner
    checks the tag's minion id against the event and validates it again. #}
sre-reactor-gpu-health-runner-orchestrate:
  runner.state.orchestrate:
    - args:
      - mods: orch.gpu_remediate
      - pillar:
          sre_event_tag: {{ tag | json }}
          sre_event_data: {{ data | json }}
