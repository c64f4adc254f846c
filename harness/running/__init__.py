"""Running a case on a target and comparing: the Unicorn runner, the per-(case, target)
verdict, the pytest plugin, failure explanations, opcode coverage and progress."""
