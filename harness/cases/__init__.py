"""What a case is and how it is read and authored: the corpus format, the assembler,
classic BPF and ELF front ends, map declarations and the scaffold for a new case."""
