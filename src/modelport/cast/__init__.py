"""The normalize room: safetensors folders made what the platforms read (``format: pt``
headers, one dtype, config.json's ``torch_dtype``, a consistent index), in place or into a new
folder, each change proven. ``normalize.py`` plans, ``apply.py`` writes and proves,
``casting.py`` casts a file's tensors (the two-thread pipeline) and ``bits.py`` casts bf16 on
its bits. (Named ``cast`` because ``modelport.normalize`` is the API function.)"""
