# Pillar top file. One pillar file per GPU node model; the beacon configuration is shared.
base:
  'gpu-*':
    - gpu.h100
    - gpu.beacons
