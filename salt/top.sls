# State top file: which formulas each minion gets (salt-call state.show_highstate shows the result).
# Order matters only for reading: each formula requires what it needs from the others.
base:
  # GPU compute nodes (the SKU's settings come from pillar: pillar/top.sls). The gpu module and the
  # gpu_health beacon come from _modules/ and _beacons/ (saltutil.sync_all) and pillar.
  'gpu-*':
    - gpu_base                # kernel headers, nouveau blacklist, memlock, no unattended GPU upgrades
    - infiniband              # inbox RDMA or DOCA-OFED: before the driver (nvidia-peermem)
    - nvidia_driver           # the driver, pinned and held; nvidia-persistenced
    - nvidia_fabricmanager    # NVSwitch fabric manager, following the driver's version
    - cuda_toolkit            # CUDA toolkit(s) from NVIDIA's repository
    - container_runtime       # NVIDIA container toolkit for the node's container runtime
    - nvidia_mig              # mig-parted and the node's MIG layout
    - gpu_monitoring          # node_exporter, DCGM, dcgm-exporter
    - sre_agent               # sre-tools and its periodic health timer
