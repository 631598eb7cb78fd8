"""Performance tooling: the prepared GPU run (`gpu_checks`, `gpu_parts`) and the TPU
roofline with collective time (`roofline`)."""
