"""Tools around the pipeline: the program generator, differential fuzzing, mutation
testing of the backends and the benchmark."""
