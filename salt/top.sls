# State top file: which formulas each minion gets (salt-call state.show_highstate shows the result).
base:
  # GPU compute nodes: the sre-tools agent (health timer); the gpu module and the gpu_health beacon
  # come from _modules/ and _beacons/ (saltutil.sync_all) and are configured by pillar.
  'gpu-*':
    - sre_agent
