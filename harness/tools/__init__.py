"""Tools around the pipeline: the program generator, differential fuzzing, mutation
testing of the backends (eBPF-level and native-level), backend coverage and the benchmark."""
