# Pillar top file. One pillar file per GPU node model (SKU), picked by the minion id
# (gpu-a100-*: A100, every other gpu-*: H100); the beacon configuration is shared.
base:
  'gpu-* and not gpu-a100-*':
    - match: compound
    - gpu.h100
    - gpu.beacons
  'gpu-a100-*':
    - gpu.a100
    - gpu.beacons
