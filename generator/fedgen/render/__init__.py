"""Pure renderers: a Federation (and the kits and ciphertexts handed in) to repository files, one module per
output kind; nothing here reads or writes the repository."""
