"""The NVML facade: the only package that imports ``pynvml`` (``nvidia-ml-py``)."""
