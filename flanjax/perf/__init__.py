"""Pre-launch and performance tooling, off the training path.

`compile_check`: compile the train/score steps ahead of time for a TPU slice
(`tpu_topologies`: chips, slices, abstract devices) and report memory, FLOPs and
collectives (`hlo_analysis`) and the roofline with collective time (`roofline`).
`benchmarking`: time the real train step on synthetic batches. `gpu_checks`,
`gpu_parts`: the prepared GPU run."""
